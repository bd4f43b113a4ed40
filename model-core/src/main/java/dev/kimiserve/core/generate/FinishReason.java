package dev.kimiserve.core.generate;

/** Why generation ended, with OpenAI's names. */
public enum FinishReason {
    /** An end-of-sequence or stop token was produced. */
    STOP,
    /** max_tokens was reached (or the context is full). */
    LENGTH,
    /** The request was cancelled. */
    CANCELLED;

    public String openAiName() {
        return switch (this) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case CANCELLED -> "abort";
        };
    }
}
