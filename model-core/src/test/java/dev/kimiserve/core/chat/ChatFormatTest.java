package dev.kimiserve.core.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Chat rendering: the built-in Kimi format and a Jinja template give the exact expected string and ids. */
class ChatFormatTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final KimiTokenizer TOK = KimiTokenizer.bundledKimi();

    @TempDir
    Path dir;

    static List<ChatMessage> conversation() {
        return List.of(
                ChatMessage.of("system", "You are Kimi."),
                ChatMessage.of("user", "Weather in Paris, 東京?"),
                new ChatMessage("assistant", "Let me check.", null,
                        List.of(new ChatMessage.ToolCall("functions.get_weather:0", "get_weather", "{\"city\":\"Paris\"}")), null),
                new ChatMessage("tool", "{\"temp\": 21}", null, List.of(), "functions.get_weather:0"),
                ChatMessage.of("assistant", "21 °C in Paris."),
                new ChatMessage("user", "Thanks!", "alice", List.of(), null));
    }

    static List<JsonNode> tools() throws IOException {
        // keys deliberately unsorted: the rendered declaration sorts them at every depth
        return List.of(JSON.readTree("""
                {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
                 "required": ["city"], "properties": {"city": {"type": "string", "description": "市"}}},
                 "description": "Get weather"}}"""));
    }

    static final String EXPECTED = "<|im_system|>tool_declare<|im_middle|>"
            + "[{\"function\":{\"description\":\"Get weather\",\"name\":\"get_weather\",\"parameters\":{\"properties\":"
            + "{\"city\":{\"description\":\"市\",\"type\":\"string\"}},\"required\":[\"city\"],\"type\":\"object\"}},\"type\":\"function\"}]"
            + "<|im_end|>"
            + "<|im_system|>system<|im_middle|>You are Kimi.<|im_end|>"
            + "<|im_user|>user<|im_middle|>Weather in Paris, 東京?<|im_end|>"
            + "<|im_assistant|>assistant<|im_middle|>Let me check.<|tool_calls_section_begin|><|tool_call_begin|>"
            + "functions.get_weather:0<|tool_call_argument_begin|>{\"city\":\"Paris\"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>"
            + "<|im_system|>tool<|im_middle|>{\"temp\": 21}<|im_end|>"
            + "<|im_assistant|>assistant<|im_middle|>21 °C in Paris.<|im_end|>"
            + "<|im_user|>alice<|im_middle|>Thanks!<|im_end|>"
            + "<|im_assistant|>assistant<|im_middle|>";

    @Test
    void builtInFormatRendersTheExpectedStringAndIds() throws IOException {
        String prompt = new KimiChatFormat().render(conversation(), tools(), true);
        assertEquals(EXPECTED, prompt);
        int[] ids = TOK.encode(prompt, true);
        // the markers are single special ids, the text between them ordinary BPE
        assertEquals(163594, ids[0]);
        assertEquals(7, count(ids, 163586), "one <|im_end|> per turn and one for the declaration");
        assertEquals(prompt, TOK.decode(ids));
        assertEquals(163601, ids[ids.length - 1]);
    }

    @Test
    void jinjaTemplateRendersExactlyLikeTheBuiltInFormat() throws IOException {
        Path model = Files.createDirectories(dir.resolve("model"));
        Files.copy(Path.of("src/test/resources/chat/kimi_style_template.jinja"), model.resolve(ChatFormats.TEMPLATE_FILE));
        ChatFormat jinja = ChatFormats.forModel(model);
        assertTrue(jinja instanceof JinjaChatTemplate);
        assertEquals(EXPECTED, jinja.render(conversation(), tools(), true));
        assertArrayEquals(TOK.encode(EXPECTED, true), TOK.encode(jinja.render(conversation(), tools(), true), true));
    }

    @Test
    void fixtureChatStringHasTheReferenceIds() throws IOException {
        JsonNode cases = JSON.readTree(SharedFixtures.fixture("kimi-tokenizer").resolve("cases.json").toFile()).get("cases");
        JsonNode chat = null;
        for (JsonNode c : cases) {
            if (c.get("text").asText().equals("<|im_user|>user<|im_middle|>What is KDA?<|im_end|><|im_assistant|>assistant<|im_middle|>")) {
                chat = c;
            }
        }
        String rendered = new KimiChatFormat().render(List.of(ChatMessage.of("user", "What is KDA?")), List.of(), true);
        assertEquals(chat.get("text").asText(), rendered);
        int[] expected = JSON.convertValue(chat.get("all"), int[].class);
        assertArrayEquals(expected, TOK.encode(rendered, true));
    }

    @Test
    void templateFromTokenizerConfigAndPythonStyleTojson() throws IOException {
        Path model = Files.createDirectories(dir.resolve("cfg"));
        Files.writeString(model.resolve("tokenizer_config.json"), JSON.writeValueAsString(Map.of(
                "bos_token", "[BOS]",
                "chat_template", "{{ bos_token }}{% for m in messages %}{{ m['role'] }}={{ m | tojson }};{% endfor %}"
                        + "{% if add_generation_prompt %}>{% endif %}")));
        String out = ChatFormats.forModel(model).render(List.of(ChatMessage.of("user", "héllo \"x\"")), List.of(), true);
        assertEquals("[BOS]user={\"role\": \"user\", \"content\": \"héllo \\\"x\\\"\"};>", out);
    }

    @Test
    void raiseExceptionFailsTheRenderWithItsMessage() throws IOException {
        Path model = Files.createDirectories(dir.resolve("raise"));
        Files.writeString(model.resolve(ChatFormats.TEMPLATE_FILE), "{{ raise_exception('roles must alternate') }}");
        ChatTemplateException e = assertThrows(ChatTemplateException.class,
                () -> ChatFormats.forModel(model).render(List.of(ChatMessage.of("user", "x")), List.of(), false));
        assertTrue(e.getMessage().contains("roles must alternate"), e.getMessage());
    }

    static int count(int[] ids, int id) {
        int n = 0;
        for (int x : ids) {
            n += x == id ? 1 : 0;
        }
        return n;
    }
}
