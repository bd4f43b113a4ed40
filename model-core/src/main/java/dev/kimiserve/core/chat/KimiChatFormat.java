package dev.kimiserve.core.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.util.List;

/**
 * The built-in Kimi chat format (fixtures/kimi-tokenizer/README.md), used when a model directory brings no template:
 * tool declarations first as {@code <|im_system|>tool_declare<|im_middle|>{tools, compact JSON, keys sorted}<|im_end|>},
 * then each message as {@code <|im_{role}|>{name or role}<|im_middle|>{content}<|im_end|>} (tool results as
 * {@code <|im_system|>tool<|im_middle|>}), assistant tool calls after the content in the Kimi tool-call section, no
 * newlines between turns, no default system prompt, no BOS; the generation prompt is
 * {@code <|im_assistant|>assistant<|im_middle|>}.
 */
public final class KimiChatFormat implements ChatFormat {
    @Override
    public String render(List<ChatMessage> messages, List<JsonNode> tools, boolean addGenerationPrompt) {
        StringBuilder sb = new StringBuilder();
        if (tools != null && !tools.isEmpty()) {
            JsonNode sorted = Json.deepSorted(JsonNodeFactory.instance.arrayNode().addAll(tools));
            sb.append("<|im_system|>tool_declare<|im_middle|>").append(Json.compact(sorted)).append("<|im_end|>");
        }
        for (ChatMessage m : messages) {
            switch (m.role()) {
                case "system" -> sb.append("<|im_system|>").append(m.name() != null ? m.name() : "system");
                case "user" -> sb.append("<|im_user|>").append(m.name() != null ? m.name() : "user");
                case "assistant" -> sb.append("<|im_assistant|>").append(m.name() != null ? m.name() : "assistant");
                default -> sb.append("<|im_system|>tool");
            }
            sb.append("<|im_middle|>");
            if (m.content() != null) {
                sb.append(m.content());
            }
            if (!m.toolCalls().isEmpty()) {
                sb.append("<|tool_calls_section_begin|>");
                for (ChatMessage.ToolCall call : m.toolCalls()) {
                    sb.append("<|tool_call_begin|>").append(call.id()).append("<|tool_call_argument_begin|>")
                            .append(call.arguments()).append("<|tool_call_end|>");
                }
                sb.append("<|tool_calls_section_end|>");
            }
            sb.append("<|im_end|>");
        }
        if (addGenerationPrompt) {
            sb.append("<|im_assistant|>assistant<|im_middle|>");
        }
        return sb.toString();
    }

    @Override
    public String describe() {
        return "built-in Kimi chat format";
    }
}
