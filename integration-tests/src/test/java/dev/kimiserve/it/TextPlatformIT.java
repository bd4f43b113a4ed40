package dev.kimiserve.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimiserve.cli.PlatformLauncher;
import dev.kimiserve.cli.UpCommand;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The platform on the bundled default model (random weights, the real Kimi tokenizer and chat format), as a user of
 * {@code ./kimi up} meets it: text in and out, API keys on, small admission limits so that the queue fills, and the
 * workers taken away at the end.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TextPlatformIT {
    static final String KEY = "it-secret-key";
    static Platform p;
    static OpenAi api;

    @BeforeAll
    static void start() throws Exception {
        Path model = UpCommand.ensureDefaultModel(SharedFixtures.repositoryRoot().resolve("integration-tests/target/models/default"));
        p = Platform.start("text", model, "kimi-default", 1, 1, 0, Map.of(
                "kimi.gateway.api-keys", KEY,
                "kimi.scheduler.max-waiting", "1",
                "kimi.scheduler.max-running", "2",
                "kimi.scheduler.no-worker-grace-ms", "2000"));
        api = p.api.withKey(KEY);
    }

    @AfterAll
    static void stop() {
        if (p != null) {
            p.close();
        }
    }

    static String chat(String content, int maxTokens, String extra) {
        return "{\"model\": \"kimi-default\", \"messages\": [{\"role\": \"system\", \"content\": \"You are terse.\"}, "
                + "{\"role\": \"user\", \"content\": \"" + content + "\"}], \"max_tokens\": " + maxTokens + extra + "}";
    }

    @Test
    @Order(1)
    void streamedChatCompletionMatchesTheNonStreamedOne() {
        String sampling = ", \"temperature\": 0.8, \"seed\": 21, \"ignore_eos\": true";
        String req = chat("Name three rivers in Europe.", 24, sampling);
        OpenAi.Reply whole = api.post("/v1/chat/completions", req);
        assertEquals(200, whole.status(), String.valueOf(whole.body()));
        assertEquals("chat.completion", whole.body().get("object").asText());
        JsonNode message = whole.body().get("choices").get(0).get("message");
        assertEquals("assistant", message.get("role").asText());
        String content = message.get("content").asText();
        assertFalse(content.isEmpty(), "random weights still produce text");

        OpenAi.Stream s = api.stream("/v1/chat/completions", chat("Name three rivers in Europe.", 24,
                sampling + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}"), null);
        assertEquals(200, s.status());
        assertTrue(s.done(), "[DONE] ends the stream");
        assertEquals("chat.completion.chunk", s.chunks().get(0).get("object").asText());
        assertEquals("assistant", s.chunks().get(0).get("choices").get(0).get("delta").get("role").asText(), "the role comes first");
        StringBuilder streamed = new StringBuilder();
        String finish = null;
        for (JsonNode c : s.chunks()) {
            for (JsonNode ch : c.path("choices")) {
                streamed.append(ch.path("delta").path("content").asText(""));
                if (!ch.path("finish_reason").isNull() && !ch.path("finish_reason").isMissingNode()) {
                    finish = ch.get("finish_reason").asText();
                }
            }
        }
        assertEquals(content, streamed.toString(), "the streamed deltas add up to the whole message");
        assertEquals("length", finish);
        JsonNode usage = s.chunks().get(s.chunks().size() - 1).get("usage");
        assertEquals(whole.body().get("usage").get("prompt_tokens").asInt(), usage.get("prompt_tokens").asInt());
        assertEquals(24, usage.get("completion_tokens").asInt());
    }

    @Test
    @Order(2)
    void nonStreamedTextCompletionCountsTokensAndNeverEmitsTheStopString() {
        String prompt = "The quick brown fox";
        String req = "{\"model\": \"kimi-default\", \"prompt\": \"" + prompt + "\", \"max_tokens\": 40, \"temperature\": 0.9, \"seed\": 4, "
                + "\"ignore_eos\": true, \"return_token_ids\": true";
        OpenAi.Reply free = api.post("/v1/completions", req + "}");
        assertEquals(200, free.status(), String.valueOf(free.body()));
        assertEquals(KimiTokenizer.bundledKimi().encode(prompt, false).length, free.body().get("usage").get("prompt_tokens").asInt());
        String text = free.body().get("choices").get(0).get("text").asText();
        assertEquals(KimiTokenizer.bundledKimi().decode(OpenAi.ints(free.body().get("choices").get(0).get("token_ids"))
                .stream().mapToInt(Integer::intValue).toArray()), text, "the text is the detokenized token ids");

        String stop = text.substring(text.length() / 2).strip();
        stop = stop.substring(0, Math.min(3, stop.length()));
        assertFalse(stop.isEmpty(), "something printable to stop on in: " + text);
        OpenAi.Reply stopped = api.post("/v1/completions", req + ", \"stop\": [" + OpenAi.JSON.valueToTree(stop) + "]}");
        assertEquals(200, stopped.status(), String.valueOf(stopped.body()));
        JsonNode choice = stopped.body().get("choices").get(0);
        assertEquals("stop", choice.get("finish_reason").asText());
        assertEquals(text.substring(0, text.indexOf(stop)), choice.get("text").asText(), "text up to, without, the stop string");
    }

    @Test
    @Order(3)
    void missingOrWrongApiKeyIs401() {
        String req = chat("hi", 2, "");
        TinyPlatformIT.assertError(p.api.post("/v1/chat/completions", req), 401, null);
        TinyPlatformIT.assertError(p.api.withKey("wrong").post("/v1/chat/completions", req), 401, null);
        assertEquals(401, p.api.get("/v1/models").status());
        assertEquals(200, api.get("/v1/models").status());
        assertEquals(200, api.post("/v1/chat/completions", req).status());
    }

    @Test
    @Order(4)
    void aFullQueueAnswers429WithRetryAfterAndTheRestComplete() throws Exception {
        int n = 8;
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<OpenAi.Reply>> replies = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String req = chat("Count to a hundred.", 300, ", \"temperature\": 1.0, \"seed\": " + i + ", \"ignore_eos\": true");
                replies.add(pool.submit(() -> api.post("/v1/chat/completions", req)));
            }
            int ok = 0;
            int refused = 0;
            for (Future<OpenAi.Reply> f : replies) {
                OpenAi.Reply r = f.get();
                if (r.status() == 200) {
                    ok++;
                    assertEquals(300, r.body().get("usage").get("completion_tokens").asInt());
                } else {
                    TinyPlatformIT.assertError(r, 429, null);
                    assertNotNull(r.headers().get("retry-after"), "429 carries Retry-After");
                    refused++;
                }
            }
            assertTrue(refused > 0, "2 running + 1 waiting: some of 8 are refused");
            assertTrue(ok >= 3, "the admitted ones complete (" + ok + ")");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(200, api.post("/v1/chat/completions", chat("hi", 2, "")).status(), "serving again once the queue drained");
    }

    @Test
    @Order(5)
    void withoutWorkersTheGatewayAnswers503() {
        for (PlatformLauncher.Service s : p.launcher.services()) {
            if (s.name().contains("worker")) {
                p.launcher.kill(s.name());
            }
        }
        long deadline = System.currentTimeMillis() + 20_000;
        OpenAi.Reply r;
        do {
            TinyPlatformIT.sleep(250);
            r = api.post("/v1/chat/completions", chat("hi", 2, ""));
        } while (r.status() != 503 && System.currentTimeMillis() < deadline);
        TinyPlatformIT.assertError(r, 503, null);
        assertEquals(503, api.get("/health").status(), "health says so too");
    }
}
