package dev.kimiserve.runtime.openai;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimiserve.core.chat.ChatMessage;
import dev.kimiserve.core.chat.ChatTemplateException;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.RequestEnvelope;
import dev.kimiserve.protocol.Sampling;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Validates an OpenAI chat or completions body and prepares it: chat template, tokenization, sampling defaults (vLLM's),
 * context-length checks. Every problem is an {@link ApiException} naming the parameter, with the status OpenAI uses.
 */
public final class RequestParser {
    private static final Set<String> CHAT_ROLES = Set.of("system", "user", "assistant", "tool", "developer");
    private static final int MAX_N = 16;
    private static final int MAX_TOP_LOGPROBS = 20;
    private static final SplittableRandom SEEDS = new SplittableRandom();

    private final ModelContext model;

    public RequestParser(ModelContext model) {
        this.model = model;
    }

    public GenerationSpec parse(String endpoint, JsonNode body) {
        if (body == null || !body.isObject()) {
            throw ApiException.badRequest("the request body must be a JSON object", null);
        }
        boolean chat = switch (endpoint) {
            case RequestEnvelope.CHAT -> true;
            case RequestEnvelope.COMPLETIONS -> false;
            default -> throw new ApiException(new ErrorInfo(404, "unknown endpoint " + endpoint, "invalid_request_error", "endpoint", null));
        };
        String modelName = string(body, "model", true);
        if (!modelName.equals(model.name())) {
            throw ApiException.notFound("The model `" + modelName + "` does not exist. This server serves `" + model.name() + "`.",
                    "model", "model_not_found");
        }
        int[] prompt = chat ? chatPrompt(body) : completionPrompt(body);
        if (prompt.length == 0) {
            throw ApiException.badRequest("the prompt is empty", chat ? "messages" : "prompt");
        }
        for (int id : prompt) {
            if (id < 0 || id >= model.vocabSize()) {
                throw ApiException.badRequest("token id " + id + " is outside the model's vocabulary [0, " + model.vocabSize() + ")",
                        chat ? "messages" : "prompt");
            }
        }
        String promptParam = chat ? "messages" : "prompt";
        if (prompt.length >= model.maxModelLen()) {
            throw new ApiException(new ErrorInfo(400, "This model's maximum context length is " + model.maxModelLen()
                    + " tokens. However, your prompt has " + prompt.length + " tokens.", "invalid_request_error", promptParam,
                    "context_length_exceeded"));
        }
        int remaining = model.maxModelLen() - prompt.length;
        Integer maxTokens = optInt(body, "max_completion_tokens");
        String maxParam = "max_completion_tokens";
        if (maxTokens == null) {
            maxTokens = optInt(body, "max_tokens");
            maxParam = "max_tokens";
        }
        if (maxTokens == null) {
            maxTokens = chat ? remaining : Math.min(16, remaining);
        } else if (maxTokens < 1) {
            throw ApiException.badRequest("'" + maxParam + "' must be at least 1, got " + maxTokens, maxParam);
        } else if (maxTokens > remaining) {
            throw new ApiException(new ErrorInfo(400, "This model's maximum context length is " + model.maxModelLen()
                    + " tokens. However, you requested " + (prompt.length + maxTokens) + " tokens (" + prompt.length
                    + " in the prompt, " + maxTokens + " in the completion). Please reduce the length of the prompt or '"
                    + maxParam + "'.", "invalid_request_error", maxParam, "context_length_exceeded"));
        }
        int n = intIn(body, "n", 1, 1, MAX_N);
        double temperature = numberIn(body, "temperature", 1.0, 0, 2);
        double topP = numberIn(body, "top_p", 1.0, Double.MIN_VALUE, 1);
        int topK = intIn(body, "top_k", -1, -1, Integer.MAX_VALUE);
        double minP = numberIn(body, "min_p", 0, 0, 1);
        double presence = numberIn(body, "presence_penalty", 0, -2, 2);
        double frequency = numberIn(body, "frequency_penalty", 0, -2, 2);
        double repetition = numberIn(body, "repetition_penalty", 1, Double.MIN_VALUE, Double.MAX_VALUE);
        Long seed = optLong(body, "seed");
        long effectiveSeed = seed != null ? seed : SEEDS.split().nextLong();
        List<String> stops = stops(body);
        List<Integer> stopIds = new ArrayList<>(intList(body, "stop_token_ids"));
        boolean ignoreEos = bool(body, "ignore_eos", false);
        if (!ignoreEos) {
            stopIds.addAll(model.eosTokenIds());
        }
        if (!stops.isEmpty() && model.tokenizer() == null) {
            throw ApiException.badRequest("'stop' needs a tokenizer; this model has none (use 'stop_token_ids')", "stop");
        }
        boolean logprobs;
        int topLogprobs;
        if (chat) {
            logprobs = bool(body, "logprobs", false);
            topLogprobs = intIn(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS);
            if (topLogprobs > 0 && !logprobs) {
                throw ApiException.badRequest("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
            }
        } else {
            Integer lp = optInt(body, "logprobs");
            if (lp != null && (lp < 0 || lp > MAX_TOP_LOGPROBS)) {
                throw ApiException.badRequest("'logprobs' must be between 0 and " + MAX_TOP_LOGPROBS + ", got " + lp, "logprobs");
            }
            logprobs = lp != null;
            topLogprobs = lp == null ? 0 : lp;
        }
        boolean stream = bool(body, "stream", false);
        boolean includeUsage = false;
        JsonNode so = body.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) {
                throw ApiException.badRequest("'stream_options' must be an object", "stream_options");
            }
            if (!stream) {
                throw ApiException.badRequest("'stream_options' is only allowed when 'stream' is true", "stream_options");
            }
            includeUsage = bool(so, "include_usage", false, "stream_options.include_usage");
        }
        boolean returnTokenIds = bool(body, "return_token_ids", false);
        boolean echo = !chat && bool(body, "echo", false);
        int priority = intIn(body, "priority", 0, Integer.MIN_VALUE, Integer.MAX_VALUE);
        String user = body.hasNonNull("user") ? string(body, "user", false) : null;
        Sampling sampling = new Sampling(temperature, topP, topK == 0 ? -1 : topK, minP, repetition, presence, frequency, effectiveSeed);
        return new GenerationSpec(chat ? "chat" : "completion", model.name(), System.currentTimeMillis() / 1000, prompt, n, maxTokens,
                sampling, stops, List.copyOf(stopIds), logprobs, topLogprobs, stream, includeUsage, returnTokenIds, echo,
                model.tokenizer() != null, 0, priority, user);
    }

    // ---- prompts ----

    private int[] chatPrompt(JsonNode body) {
        if (model.tokenizer() == null) {
            throw ApiException.badRequest("this model has no tokenizer: use /v1/completions with 'prompt' as token ids", "messages");
        }
        JsonNode msgs = body.get("messages");
        if (msgs == null || msgs.isNull()) {
            throw ApiException.badRequest("'messages' is required", "messages");
        }
        if (!msgs.isArray() || msgs.isEmpty()) {
            throw ApiException.badRequest("'messages' must be a non-empty array", "messages");
        }
        List<ChatMessage> messages = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) {
            messages.add(message(msgs.get(i), "messages[" + i + "]"));
        }
        List<JsonNode> tools = new ArrayList<>();
        JsonNode t = body.get("tools");
        if (t != null && !t.isNull()) {
            if (!t.isArray()) {
                throw ApiException.badRequest("'tools' must be an array", "tools");
            }
            for (int i = 0; i < t.size(); i++) {
                if (!t.get(i).isObject() || !t.get(i).path("function").isObject() || !t.get(i).path("function").path("name").isTextual()) {
                    throw ApiException.badRequest("'tools[" + i + "]' must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
                }
                tools.add(t.get(i));
            }
        }
        boolean addGenerationPrompt = bool(body, "add_generation_prompt", true);
        String text;
        try {
            text = model.chatFormat().render(messages, tools, addGenerationPrompt);
        } catch (ChatTemplateException e) {
            throw ApiException.badRequest("the chat template rejected the conversation: " + e.getMessage(), "messages");
        }
        return model.tokenizer().encode(text, true);
    }

    private ChatMessage message(JsonNode m, String where) {
        if (!m.isObject()) {
            throw ApiException.badRequest("'" + where + "' must be an object", "messages");
        }
        JsonNode roleNode = m.get("role");
        if (roleNode == null || !roleNode.isTextual() || !CHAT_ROLES.contains(roleNode.asText())) {
            throw ApiException.badRequest("'" + where + ".role' must be one of system, user, assistant, tool", "messages");
        }
        String role = roleNode.asText().equals("developer") ? "system" : roleNode.asText();
        String content = content(m.get("content"), where);
        String name = m.hasNonNull("name") ? textOf(m.get("name"), where + ".name") : null;
        List<ChatMessage.ToolCall> calls = new ArrayList<>();
        JsonNode tc = m.get("tool_calls");
        if (tc != null && !tc.isNull()) {
            if (!tc.isArray()) {
                throw ApiException.badRequest("'" + where + ".tool_calls' must be an array", "messages");
            }
            for (int i = 0; i < tc.size(); i++) {
                JsonNode c = tc.get(i);
                JsonNode f = c.path("function");
                if (!f.path("name").isTextual()) {
                    throw ApiException.badRequest("'" + where + ".tool_calls[" + i + "].function.name' is required", "messages");
                }
                JsonNode args = f.get("arguments");
                String argText = args == null || args.isNull() ? "{}" : args.isTextual() ? args.asText() : args.toString();
                calls.add(new ChatMessage.ToolCall(c.path("id").asText("call_" + i), f.get("name").asText(), argText));
            }
        }
        if (content == null && calls.isEmpty() && !role.equals("assistant")) {
            throw ApiException.badRequest("'" + where + ".content' is required", "messages");
        }
        String toolCallId = m.hasNonNull("tool_call_id") ? textOf(m.get("tool_call_id"), where + ".tool_call_id") : null;
        return new ChatMessage(role, content, name, calls, toolCallId);
    }

    /** String content, or the text parts of an array of content parts. */
    private static String content(JsonNode c, String where) {
        if (c == null || c.isNull()) {
            return null;
        }
        if (c.isTextual()) {
            return c.asText();
        }
        if (c.isArray()) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < c.size(); i++) {
                JsonNode part = c.get(i);
                if (!part.isObject() || !"text".equals(part.path("type").asText()) || !part.path("text").isTextual()) {
                    throw ApiException.badRequest("'" + where + ".content[" + i + "]' must be a text part {\"type\": \"text\", \"text\": ...};"
                            + " this model reads text only", "messages");
                }
                sb.append(part.get("text").asText());
            }
            return sb.toString();
        }
        throw ApiException.badRequest("'" + where + ".content' must be a string or an array of text parts", "messages");
    }

    private int[] completionPrompt(JsonNode body) {
        JsonNode p = body.get("prompt");
        if (p == null || p.isNull()) {
            throw ApiException.badRequest("'prompt' is required", "prompt");
        }
        if (p.isTextual()) {
            return encodeText(p.asText());
        }
        if (p.isArray()) {
            if (p.isEmpty()) {
                throw ApiException.badRequest("'prompt' must not be empty", "prompt");
            }
            if (p.get(0).isIntegralNumber()) {
                return tokenIds(p);
            }
            if (p.size() == 1 && p.get(0).isTextual()) {
                return encodeText(p.get(0).asText());
            }
            if (p.size() == 1 && p.get(0).isArray()) {
                return tokenIds(p.get(0));
            }
            throw ApiException.badRequest("'prompt' must be a string, a list of token ids, or a list holding one of those"
                    + " (several prompts per request are not supported)", "prompt");
        }
        throw ApiException.badRequest("'prompt' must be a string or a list of token ids", "prompt");
    }

    private int[] encodeText(String text) {
        if (model.tokenizer() == null) {
            throw ApiException.badRequest("this model has no tokenizer: send 'prompt' as a list of token ids", "prompt");
        }
        return model.tokenizer().encode(text, false);
    }

    private static int[] tokenIds(JsonNode arr) {
        int[] ids = new int[arr.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode e = arr.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                throw ApiException.badRequest("'prompt[" + i + "]' must be a token id (an integer)", "prompt");
            }
            ids[i] = e.asInt();
        }
        return ids;
    }

    private List<String> stops(JsonNode body) {
        JsonNode s = body.get("stop");
        if (s == null || s.isNull()) {
            return List.of();
        }
        if (s.isTextual()) {
            return s.asText().isEmpty() ? List.of() : List.of(s.asText());
        }
        if (s.isArray()) {
            List<String> out = new ArrayList<>();
            for (int i = 0; i < s.size(); i++) {
                if (!s.get(i).isTextual()) {
                    throw ApiException.badRequest("'stop[" + i + "]' must be a string", "stop");
                }
                if (!s.get(i).asText().isEmpty()) {
                    out.add(s.get(i).asText());
                }
            }
            return out;
        }
        throw ApiException.badRequest("'stop' must be a string or an array of strings", "stop");
    }

    // ---- typed fields ----

    private static String string(JsonNode body, String key, boolean required) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            if (required) {
                throw ApiException.badRequest("'" + key + "' is required", key);
            }
            return null;
        }
        return textOf(n, key);
    }

    private static String textOf(JsonNode n, String key) {
        if (!n.isTextual()) {
            throw ApiException.badRequest("'" + key + "' must be a string", key.contains("[") ? "messages" : key);
        }
        return n.asText();
    }

    private static Integer optInt(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw ApiException.badRequest("'" + key + "' must be an integer, got " + n, key);
        }
        return n.asInt();
    }

    private static Long optLong(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isIntegralNumber() || !n.canConvertToLong()) {
            throw ApiException.badRequest("'" + key + "' must be an integer, got " + n, key);
        }
        return n.asLong();
    }

    private static int intIn(JsonNode body, String key, int fallback, int min, int max) {
        Integer v = optInt(body, key);
        if (v == null) {
            return fallback;
        }
        if (v < min || v > max) {
            throw ApiException.badRequest("'" + key + "' must be between " + min + " and " + max + ", got " + v, key);
        }
        return v;
    }

    private static double numberIn(JsonNode body, String key, double fallback, double min, double max) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw ApiException.badRequest("'" + key + "' must be a number, got " + n, key);
        }
        double v = n.asDouble();
        if (!(v >= min && v <= max)) {
            throw ApiException.badRequest("'" + key + "' must be between " + (min == Double.MIN_VALUE ? "0 (exclusive)" : min) + " and "
                    + (max == Double.MAX_VALUE ? "any" : max) + ", got " + v, key);
        }
        return v;
    }

    private static boolean bool(JsonNode body, String key, boolean fallback) {
        return bool(body, key, fallback, key);
    }

    private static boolean bool(JsonNode body, String key, boolean fallback, String param) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw ApiException.badRequest("'" + param + "' must be true or false, got " + n, param);
        }
        return n.asBoolean();
    }

    private static List<Integer> intList(JsonNode body, String key) {
        JsonNode n = body.get(key);
        if (n == null || n.isNull()) {
            return List.of();
        }
        if (!n.isArray()) {
            throw ApiException.badRequest("'" + key + "' must be an array of integers", key);
        }
        List<Integer> out = new ArrayList<>();
        for (Iterator<JsonNode> it = n.elements(); it.hasNext(); ) {
            JsonNode e = it.next();
            if (!e.isIntegralNumber()) {
                throw ApiException.badRequest("'" + key + "' must be an array of integers", key);
            }
            out.add(e.asInt());
        }
        return out;
    }
}
