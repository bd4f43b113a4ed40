package dev.kimiserve.core.chat;

import java.util.List;

/**
 * One message of a conversation, OpenAI-shaped.
 *
 * @param role       system, user, assistant or tool
 * @param content    the text (null for an assistant message that only calls tools)
 * @param name       optional speaker name (rendered instead of the role)
 * @param toolCalls  tool calls of an assistant message (empty otherwise)
 * @param toolCallId for a tool message: the call it answers
 */
public record ChatMessage(String role, String content, String name, List<ToolCall> toolCalls, String toolCallId) {
    public ChatMessage {
        if (role == null || !List.of("system", "user", "assistant", "tool").contains(role)) {
            throw new IllegalArgumentException("message role must be system, user, assistant or tool, got " + role);
        }
        toolCalls = toolCalls == null ? List.of() : List.copyOf(toolCalls);
    }

    public static ChatMessage of(String role, String content) {
        return new ChatMessage(role, content, null, List.of(), null);
    }

    /**
     * A function call made by the assistant.
     *
     * @param arguments the arguments as the JSON text the model produced
     */
    public record ToolCall(String id, String name, String arguments) {
    }
}
