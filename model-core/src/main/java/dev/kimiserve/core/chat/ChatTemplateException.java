package dev.kimiserve.core.chat;

/** A chat template that cannot render this conversation (a template error or its own raise_exception). */
public class ChatTemplateException extends RuntimeException {
    public ChatTemplateException(String message) {
        super(message);
    }
}
