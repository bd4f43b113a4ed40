package dev.kimiserve.core.chat;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;

/** Renders a conversation into the prompt text the model was trained on. */
public interface ChatFormat {
    /**
     * @param tools               OpenAI tool declarations ({"type":"function","function":{...}}), possibly empty
     * @param addGenerationPrompt append the assistant turn's header so that the model answers
     */
    String render(List<ChatMessage> messages, List<JsonNode> tools, boolean addGenerationPrompt);

    /** A short description for logs ("built-in Kimi format", "chat_template.jinja"). */
    String describe();
}
