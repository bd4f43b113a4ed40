package dev.kimiserve.core.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's own chat template (chat_template.jinja, or chat_template in tokenizer_config.json) rendered the way Hugging
 * Face renders it: trim_blocks and lstrip_blocks on, {@code tojson} as json.dumps with ensure_ascii=False and no key
 * sorting (separators and indent honoured), {@code raise_exception(msg)} failing the render. As Kimi's tokenizer does,
 * tool declarations have their keys sorted recursively before the template sees them.
 */
public final class JinjaChatTemplate implements ChatFormat {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String template;
    private final String origin;
    private final Map<String, Object> specialTokens;
    private final Jinjava jinjava;

    /**
     * @param specialTokens variables the template may use (bos_token, eos_token, ...)
     */
    public JinjaChatTemplate(String template, String origin, Map<String, Object> specialTokens) {
        this.template = template;
        this.origin = origin;
        this.specialTokens = Map.copyOf(specialTokens);
        this.jinjava = new Jinjava(JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true).build());
        jinjava.getGlobalContext().registerFilter(new ToJson());
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", JinjaChatTemplate.class,
                "raiseException", String.class));
    }

    @Override
    public String render(List<ChatMessage> messages, List<JsonNode> tools, boolean addGenerationPrompt) {
        Map<String, Object> ctx = new LinkedHashMap<>(specialTokens);
        List<Object> msgs = new ArrayList<>();
        for (ChatMessage m : messages) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("role", m.role());
            o.put("content", m.content());
            if (m.name() != null) {
                o.put("name", m.name());
            }
            if (!m.toolCalls().isEmpty()) {
                List<Object> calls = new ArrayList<>();
                for (ChatMessage.ToolCall c : m.toolCalls()) {
                    calls.add(new LinkedHashMap<>(Map.of("id", c.id(), "type", "function",
                            "function", new LinkedHashMap<>(Map.of("name", c.name(), "arguments", c.arguments())))));
                }
                o.put("tool_calls", calls);
            }
            if (m.toolCallId() != null) {
                o.put("tool_call_id", m.toolCallId());
            }
            msgs.add(o);
        }
        ctx.put("messages", msgs);
        if (tools != null && !tools.isEmpty()) {
            JsonNode sorted = Json.deepSorted(JsonNodeFactory.instance.arrayNode().addAll(tools));
            ctx.put("tools", MAPPER.convertValue(sorted, List.class));
        }
        ctx.put("add_generation_prompt", addGenerationPrompt);
        RenderResult r = jinjava.renderForResult(template, ctx);
        for (TemplateError e : r.getErrors()) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                String raised = raisedMessage(e.getException());
                throw new ChatTemplateException(origin + ": " + (raised != null ? raised : e.getMessage())
                        + (e.getLineno() > 0 ? " (line " + e.getLineno() + ")" : ""));
            }
        }
        return r.getOutput();
    }

    @Override
    public String describe() {
        return origin;
    }

    /** The message of a raise_exception somewhere in a cause chain, or null. */
    private static String raisedMessage(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ChatTemplateException) {
                return c.getMessage();
            }
        }
        return null;
    }

    /** The template's raise_exception(message). */
    public static String raiseException(String message) {
        throw new ChatTemplateException(message);
    }

    /** json.dumps(value, ensure_ascii=False, indent=..., separators=...), keys in insertion order. */
    static final class ToJson implements AdvancedFilter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            JsonNode node = MAPPER.valueToTree(var);
            String itemSep = ", ";
            String keySep = ": ";
            Object separators = kwargs.get("separators");
            if (separators instanceof List<?> l && l.size() == 2) {
                itemSep = String.valueOf(l.get(0));
                keySep = String.valueOf(l.get(1));
            }
            Object indent = kwargs.get("indent");
            if (indent != null) {
                int n = Integer.parseInt(String.valueOf(indent));
                return indented(node, n, separators instanceof List<?> ? keySep : ": ", 0);
            }
            StringBuilder sb = new StringBuilder();
            Json.write(node, sb, itemSep, keySep);
            return sb.toString();
        }

        private static String indented(JsonNode n, int indent, String keySep, int depth) {
            String pad = " ".repeat(indent * (depth + 1));
            String close = " ".repeat(indent * depth);
            if (n.isObject() && !n.isEmpty()) {
                StringBuilder sb = new StringBuilder("{\n");
                var it = n.fields();
                while (it.hasNext()) {
                    var e = it.next();
                    sb.append(pad).append(Json.compact(JsonNodeFactory.instance.textNode(e.getKey()))).append(keySep)
                            .append(indented(e.getValue(), indent, keySep, depth + 1)).append(it.hasNext() ? ",\n" : "\n");
                }
                return sb.append(close).append('}').toString();
            }
            if (n.isArray() && !n.isEmpty()) {
                StringBuilder sb = new StringBuilder("[\n");
                for (int i = 0; i < n.size(); i++) {
                    sb.append(pad).append(indented(n.get(i), indent, keySep, depth + 1)).append(i + 1 < n.size() ? ",\n" : "\n");
                }
                return sb.append(close).append(']').toString();
            }
            return Json.compact(n);
        }
    }
}
