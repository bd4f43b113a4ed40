package dev.kimiserve.core.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Chooses a model directory's chat format: chat_template.jinja, else tokenizer_config.json's chat_template, else the built-in Kimi format. */
public final class ChatFormats {
    public static final String TEMPLATE_FILE = "chat_template.jinja";

    private ChatFormats() {
    }

    public static ChatFormat forModel(Path modelDir) {
        Map<String, Object> tokens = new LinkedHashMap<>();
        tokens.put("bos_token", "[BOS]");
        tokens.put("eos_token", "<|im_end|>");
        Path cfg = modelDir.resolve("tokenizer_config.json");
        JsonNode config = null;
        if (Files.isRegularFile(cfg)) {
            try {
                config = new ObjectMapper().readTree(cfg.toFile());
            } catch (IOException e) {
                throw ModelFormatException.of(cfg, "not valid JSON: " + e.getMessage(), e);
            }
            for (String key : new String[]{"bos_token", "eos_token", "pad_token", "unk_token"}) {
                JsonNode v = config.get(key);
                if (v != null && v.isTextual()) {
                    tokens.put(key, v.asText());
                } else if (v != null && v.isObject() && v.has("content")) {
                    tokens.put(key, v.get("content").asText());
                }
            }
        }
        Path file = modelDir.resolve(TEMPLATE_FILE);
        if (Files.isRegularFile(file)) {
            try {
                return new JinjaChatTemplate(Files.readString(file), file.toString(), tokens);
            } catch (IOException e) {
                throw ModelFormatException.of(file, "cannot read: " + e.getMessage(), e);
            }
        }
        if (config != null && config.has("chat_template")) {
            JsonNode t = config.get("chat_template");
            if (t.isTextual()) {
                return new JinjaChatTemplate(t.asText(), cfg + " (chat_template)", tokens);
            }
            if (t.isArray()) {
                for (JsonNode named : t) {
                    if ("default".equals(named.path("name").asText()) && named.path("template").isTextual()) {
                        return new JinjaChatTemplate(named.get("template").asText(), cfg + " (chat_template 'default')", tokens);
                    }
                }
            }
            throw ModelFormatException.of(cfg, "field 'chat_template' is neither a template string nor a list with a 'default' template");
        }
        return new KimiChatFormat();
    }
}
