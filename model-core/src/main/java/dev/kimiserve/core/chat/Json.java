package dev.kimiserve.core.chat;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/** JSON as Python's json.dumps writes it for chat templates. */
final class Json {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private Json() {
    }

    /** Object keys sorted at every depth (Kimi's tokenizer sorts tool declarations before rendering). */
    static JsonNode deepSorted(JsonNode node) {
        if (node.isObject()) {
            List<String> keys = new ArrayList<>();
            node.fieldNames().forEachRemaining(keys::add);
            keys.sort(null);
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            for (String k : keys) {
                out.set(k, deepSorted(node.get(k)));
            }
            return out;
        }
        if (node.isArray()) {
            ArrayNode out = JsonNodeFactory.instance.arrayNode();
            node.forEach(e -> out.add(deepSorted(e)));
            return out;
        }
        return node;
    }

    /** json.dumps(value, ensure_ascii=False, separators=(',', ':')). */
    static String compact(JsonNode node) {
        try {
            return MAPPER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** json.dumps(value, ensure_ascii=False) with Python's default separators (', ', ': '), keys in their order. */
    static String pythonDefault(Object value) {
        StringBuilder sb = new StringBuilder();
        write(MAPPER.valueToTree(value), sb, ", ", ": ");
        return sb.toString();
    }

    static void write(JsonNode n, StringBuilder sb, String itemSep, String keySep) {
        if (n.isObject()) {
            sb.append('{');
            boolean first = true;
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!first) {
                    sb.append(itemSep);
                }
                first = false;
                sb.append(compact(JsonNodeFactory.instance.textNode(e.getKey()))).append(keySep);
                write(e.getValue(), sb, itemSep, keySep);
            }
            sb.append('}');
        } else if (n.isArray()) {
            sb.append('[');
            for (int i = 0; i < n.size(); i++) {
                if (i > 0) {
                    sb.append(itemSep);
                }
                write(n.get(i), sb, itemSep, keySep);
            }
            sb.append(']');
        } else {
            sb.append(compact(n));
        }
    }
}
