package dev.kimiserve.runtime.openai;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.TokenEvent;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Collects the token events of one request and shapes them into OpenAI responses: the complete body (non-streamed HTTP,
 * Kafka-native) or SSE chunk payloads as events arrive. Events are accepted in index order per choice; an index seen
 * before is dropped, which is what makes re-runs after a worker failure invisible. Not thread-safe: one per request.
 */
public final class ResponseAssembly {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private final String requestId;
    private final GenerationSpec spec;
    private final KimiTokenizer tokenizer;
    private final Choice[] choices;
    private ErrorInfo error;
    private int finished;
    private boolean roleSent;

    public ResponseAssembly(String requestId, GenerationSpec spec, KimiTokenizer tokenizer) {
        this.requestId = requestId;
        this.spec = spec;
        this.tokenizer = tokenizer;
        this.choices = new Choice[spec.n()];
        for (int i = 0; i < choices.length; i++) {
            choices[i] = new Choice();
        }
    }

    private static final class Choice {
        final List<Integer> ids = new ArrayList<>();
        final StringBuilder text = new StringBuilder();
        final List<TokenEvent> events = new ArrayList<>();
        int nextIndex;
        String finishReason;
    }

    /** Takes an event; returns false for a duplicate, an out-of-order event or one after the end. */
    public boolean accept(TokenEvent e) {
        if (error != null) {
            return false;
        }
        if (e.error() != null) {
            error = e.error();
            return true;
        }
        if (e.choice() < 0 || e.choice() >= choices.length) {
            return false;
        }
        Choice c = choices[e.choice()];
        if (c.finishReason != null || e.index() != c.nextIndex) {
            return false;
        }
        c.nextIndex++;
        if (e.tokenId() != null) {
            c.ids.add(e.tokenId());
            c.events.add(e);
        }
        if (e.text() != null) {
            c.text.append(e.text());
        }
        if (e.finishReason() != null) {
            c.finishReason = e.finishReason();
            finished++;
        }
        return true;
    }

    public boolean complete() {
        return error != null || finished == choices.length;
    }

    public ErrorInfo error() {
        return error;
    }

    public int completionTokens() {
        int n = 0;
        for (Choice c : choices) {
            n += c.ids.size();
        }
        return n;
    }

    private boolean chat() {
        return spec.kind().equals("chat");
    }

    private ObjectNode header(String object) {
        ObjectNode r = F.objectNode();
        r.put("id", requestId);
        r.put("object", object);
        r.put("created", spec.created());
        r.put("model", spec.model());
        return r;
    }

    private ObjectNode usage() {
        ObjectNode u = F.objectNode();
        int completion = completionTokens();
        u.put("prompt_tokens", spec.promptTokenIds().length);
        u.put("completion_tokens", completion);
        u.put("total_tokens", spec.promptTokenIds().length + completion);
        return u;
    }

    private String echoPrefix() {
        return spec.echo() && tokenizer != null ? tokenizer.decode(spec.promptTokenIds()) : "";
    }

    /** The complete non-streamed body (call when {@link #complete()}). */
    public ObjectNode finalResponse() {
        if (error != null) {
            return errorBody(error);
        }
        ObjectNode r = header(chat() ? "chat.completion" : "text_completion");
        ArrayNode arr = r.putArray("choices");
        for (int i = 0; i < choices.length; i++) {
            Choice c = choices[i];
            ObjectNode ch = arr.addObject();
            ch.put("index", i);
            if (chat()) {
                ObjectNode msg = ch.putObject("message");
                msg.put("role", "assistant");
                msg.put("content", c.text.toString());
                ch.set("logprobs", spec.logprobs() ? chatLogprobs(c.events) : F.nullNode());
            } else {
                ch.put("text", echoPrefix() + c.text);
                ch.set("logprobs", spec.logprobs() ? completionLogprobs(c.events) : F.nullNode());
            }
            ch.put("finish_reason", c.finishReason);
            if (spec.returnTokenIds()) {
                ch.set("token_ids", ints(c.ids));
                if (!chat()) {
                    ch.set("prompt_token_ids", ints(spec.promptTokenIds()));
                }
            }
        }
        r.set("usage", usage());
        if (spec.returnTokenIds()) {
            r.set("prompt_token_ids", ints(spec.promptTokenIds()));
        }
        return r;
    }

    /** SSE data payloads (JSON text) for an event just accepted; the caller writes "data: ...\n\n" for each. */
    public List<String> chunksFor(TokenEvent e) {
        List<String> out = new ArrayList<>();
        if (e.error() != null) {
            out.add(errorBody(e.error()).toString());
            return out;
        }
        ObjectNode chunk = header(chat() ? "chat.completion.chunk" : "text_completion");
        ArrayNode arr = chunk.putArray("choices");
        ObjectNode ch = arr.addObject();
        ch.put("index", e.choice());
        String text = e.text() == null ? "" : e.text();
        if (chat()) {
            ObjectNode delta = ch.putObject("delta");
            if (!roleSent) {
                delta.put("role", "assistant");
            }
            if (e.tokenId() != null || !text.isEmpty()) {
                delta.put("content", text);
            }
            ch.set("logprobs", spec.logprobs() && e.tokenId() != null ? chatLogprobs(List.of(e)) : F.nullNode());
        } else {
            ch.put("text", (e.index() == 0 ? echoPrefix() : "") + text);
            ch.set("logprobs", spec.logprobs() && e.tokenId() != null ? completionLogprobs(List.of(e)) : F.nullNode());
        }
        if (!roleSent && spec.returnTokenIds()) {
            chunk.set("prompt_token_ids", ints(spec.promptTokenIds()));
        }
        roleSent = true;
        ch.set("finish_reason", e.finishReason() != null ? F.textNode(e.finishReason()) : F.nullNode());
        if (spec.returnTokenIds()) {
            ch.set("token_ids", e.tokenId() != null ? ints(List.of(e.tokenId())) : F.arrayNode());
        }
        out.add(chunk.toString());
        if (complete() && spec.includeUsage()) {
            ObjectNode u = header(chat() ? "chat.completion.chunk" : "text_completion");
            u.putArray("choices");
            u.set("usage", usage());
            out.add(u.toString());
        }
        return out;
    }

    private ObjectNode chatLogprobs(List<TokenEvent> events) {
        ObjectNode lp = F.objectNode();
        ArrayNode content = lp.putArray("content");
        for (TokenEvent e : events) {
            ObjectNode item = content.addObject();
            putToken(item, e.tokenId());
            item.put("logprob", e.logprob() == null ? 0.0 : e.logprob());
            ArrayNode top = item.putArray("top_logprobs");
            if (e.topLogprobs() != null) {
                for (TokenEvent.TopLogprob t : e.topLogprobs()) {
                    ObjectNode o = top.addObject();
                    putToken(o, t.tokenId());
                    o.put("logprob", t.logprob());
                }
            }
        }
        return lp;
    }

    private ObjectNode completionLogprobs(List<TokenEvent> events) {
        ObjectNode lp = F.objectNode();
        ArrayNode tokens = lp.putArray("tokens");
        ArrayNode tokenLogprobs = lp.putArray("token_logprobs");
        ArrayNode tops = lp.putArray("top_logprobs");
        ArrayNode offsets = lp.putArray("text_offset");
        int offset = 0;
        for (TokenEvent e : events) {
            String t = tokenText(e.tokenId());
            tokens.add(t);
            tokenLogprobs.add(e.logprob() == null ? 0.0 : e.logprob());
            ObjectNode top = tops.addObject();
            if (e.topLogprobs() != null) {
                for (TokenEvent.TopLogprob tl : e.topLogprobs()) {
                    top.put(tokenText(tl.tokenId()), tl.logprob());
                }
            }
            offsets.add(offset);
            offset += t.length();
        }
        return lp;
    }

    private void putToken(ObjectNode o, int id) {
        o.put("token", tokenText(id));
        ArrayNode bytes = o.putArray("bytes");
        if (tokenizer != null) {
            for (byte b : tokenizer.tokenBytes(id)) {
                bytes.add(b & 0xFF);
            }
        }
    }

    private String tokenText(int id) {
        if (tokenizer == null) {
            return "token_id:" + id;
        }
        return new String(tokenizer.tokenBytes(id), StandardCharsets.UTF_8);
    }

    private static ArrayNode ints(List<Integer> ids) {
        ArrayNode a = F.arrayNode();
        ids.forEach(a::add);
        return a;
    }

    private static ArrayNode ints(int[] ids) {
        ArrayNode a = F.arrayNode();
        for (int id : ids) {
            a.add(id);
        }
        return a;
    }

    /** {"error": {"message", "type", "param", "code"}}. */
    public static ObjectNode errorBody(ErrorInfo e) {
        ObjectNode r = F.objectNode();
        ObjectNode err = r.putObject("error");
        err.put("message", e.message());
        err.put("type", e.type());
        if (e.param() != null) {
            err.put("param", e.param());
        } else {
            err.putNull("param");
        }
        if (e.code() != null) {
            err.put("code", e.code());
        } else {
            err.putNull("code");
        }
        return r;
    }

    public static String errorJson(ErrorInfo e) {
        return errorBody(e).toString();
    }

}
