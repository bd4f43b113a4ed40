package dev.kimiserve.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimiserve.cli.PlatformLauncher;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.testing.TinyA;
import dev.kimiserve.protocol.Topics;
import dev.kimiserve.runtime.kafka.KafkaSupport;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The platform serving the tiny-a fixture (no tokenizer: token-id prompts), one prefill and two decode workers, every
 * service its own process, a real KRaft broker. The worker-kill test runs last.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TinyPlatformIT {
    static Platform p;
    static TinyA tiny;

    @BeforeAll
    static void start() {
        tiny = new TinyA();
        p = Platform.start("tiny", SharedFixtures.tinyA(), "tiny-a", 1, 2, 0, Map.of("kimi.gateway.max-body-bytes", "200000"));
    }

    @AfterAll
    static void stop() {
        if (p != null) {
            p.close();
        }
        if (tiny != null) {
            tiny.close();
        }
    }

    static String completion(int[] prompt, int maxTokens, String extra) {
        return "{\"model\": \"tiny-a\", \"prompt\": " + Arrays.toString(prompt) + ", \"max_tokens\": " + maxTokens
                + ", \"return_token_ids\": true" + extra + "}";
    }

    @Test
    @Order(1)
    void greedyContinuationOfTheFixtureComesBackTokenByToken() {
        int[] expected = tiny.ids("generate.7.new_tokens");
        OpenAi.Reply r = p.api.post("/v1/completions", completion(tiny.prompt(7), expected.length, ", \"temperature\": 0, \"ignore_eos\": true"));
        assertEquals(200, r.status(), String.valueOf(r.body()));
        JsonNode choice = r.body().get("choices").get(0);
        assertEquals(Arrays.stream(expected).boxed().toList(), OpenAi.ints(choice.get("token_ids")));
        assertEquals("length", choice.get("finish_reason").asText());
        assertEquals(7, r.body().get("usage").get("prompt_tokens").asInt());
        assertEquals(expected.length, r.body().get("usage").get("completion_tokens").asInt());
        assertEquals(Arrays.stream(tiny.prompt(7)).boxed().toList(), OpenAi.ints(r.body().get("prompt_token_ids")));
    }

    @Test
    @Order(2)
    void streamedAndNonStreamedCompletionsAgree() {
        String req = completion(tiny.prompt(64), 30, ", \"temperature\": 0.9, \"top_p\": 0.95, \"seed\": 7, \"ignore_eos\": true");
        OpenAi.Reply whole = p.api.post("/v1/completions", req);
        assertEquals(200, whole.status());
        OpenAi.Stream s = p.api.stream("/v1/completions", req.replace("}", ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}"), null);
        assertEquals(200, s.status());
        assertTrue(s.done(), "stream ends with [DONE]");
        assertEquals(OpenAi.ints(whole.body().get("choices").get(0).get("token_ids")), s.tokenIds(0));
        JsonNode last = s.chunks().get(s.chunks().size() - 1);
        assertEquals(30, last.get("usage").get("completion_tokens").asInt(), "usage chunk last");
    }

    @Test
    @Order(3)
    void sixteenConcurrentStreamsEachGetTheirOwnTokensInOrderOnce() throws Exception {
        int n = 16;
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<OpenAi.Stream>> streams = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String req = completion(tiny.prompt(i % 2 == 0 ? 7 : 150), 40, ", \"temperature\": 1.0, \"seed\": " + (100 + i)
                        + ", \"ignore_eos\": true, \"stream\": true");
                streams.add(pool.submit(() -> p.api.stream("/v1/completions", req, null)));
            }
            for (int i = 0; i < n; i++) {
                OpenAi.Stream s = streams.get(i).get();
                assertEquals(200, s.status());
                assertTrue(s.done());
                List<Integer> ids = s.tokenIds(0);
                assertEquals(40, ids.size(), "stream " + i + " has every token once");
                String alone = completion(tiny.prompt(i % 2 == 0 ? 7 : 150), 40, ", \"temperature\": 1.0, \"seed\": " + (100 + i) + ", \"ignore_eos\": true");
                assertEquals(OpenAi.ints(p.api.post("/v1/completions", alone).body().get("choices").get(0).get("token_ids")), ids,
                        "stream " + i + " got exactly its own tokens, in order");
                long finals = s.chunks().stream().filter(c -> !c.path("choices").path(0).path("finish_reason").isNull()
                        && c.path("choices").size() > 0).count();
                assertEquals(1, finals, "one final chunk");
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    @Order(4)
    void kafkaNativeRoundTripAnsweredOnce() throws Exception {
        String bootstrap = p.launcher.kafkaBootstrap();
        String id = "native-" + System.nanoTime();
        String envelope = "{\"id\": \"" + id + "\", \"endpoint\": \"/v1/completions\", \"body\": "
                + completion(tiny.prompt(7), 24, ", \"temperature\": 0, \"ignore_eos\": true") + "}";
        String bad = "{\"id\": \"" + id + "-bad\", \"endpoint\": \"/v1/completions\", \"body\": {\"model\": \"tiny-a\", \"prompt\": [1], \"max_tokens\": \"x\"}}";
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(bootstrap, "it-responses", null, "earliest");
             KafkaProducer<String, byte[]> prod = KafkaSupport.producer(bootstrap, "it-native")) {
            List<TopicPartition> parts = c.partitionsFor(Topics.RESPONSES).stream().map(pi -> new TopicPartition(pi.topic(), pi.partition())).toList();
            c.assign(parts);
            prod.send(new ProducerRecord<>(Topics.REQUESTS, id, envelope.getBytes(StandardCharsets.UTF_8))).get();
            prod.send(new ProducerRecord<>(Topics.REQUESTS, id, envelope.getBytes(StandardCharsets.UTF_8))).get();  // redelivery
            prod.send(new ProducerRecord<>(Topics.REQUESTS, id + "-bad", bad.getBytes(StandardCharsets.UTF_8))).get();
            Map<String, List<JsonNode>> got = new HashMap<>();
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline && (!got.containsKey(id) || !got.containsKey(id + "-bad"))) {
                for (ConsumerRecord<String, byte[]> r : c.poll(Duration.ofMillis(200))) {
                    got.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(OpenAi.JSON.readTree(r.value()));
                }
            }
            long settle = System.currentTimeMillis() + 3000;                 // give a duplicate the time to show up
            while (System.currentTimeMillis() < settle) {
                for (ConsumerRecord<String, byte[]> r : c.poll(Duration.ofMillis(200))) {
                    got.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(OpenAi.JSON.readTree(r.value()));
                }
            }
            assertNotNull(got.get(id), "response on kimi.responses");
            assertEquals(1, got.get(id).size(), "a redelivered request id is answered once");
            JsonNode resp = got.get(id).get(0);
            assertEquals("text_completion", resp.get("object").asText());
            assertEquals(Arrays.stream(tiny.ids("generate.7.new_tokens")).boxed().toList(), OpenAi.ints(resp.get("choices").get(0).get("token_ids")));
            JsonNode err = got.get(id + "-bad").get(0).get("error");
            assertEquals("max_tokens", err.get("param").asText(), "an invalid Kafka-native request gets an OpenAI error object");
        }
    }

    @Test
    @Order(5)
    void badInputGetsTheRightStatusAndTheServiceKeepsServing() {
        assertError(p.api.post("/v1/completions", "{not json"), 400, null);
        assertError(p.api.post("/v1/completions", "{\"model\": \"tiny-a\", \"prompt\": [1, 2], \"temperature\": \"hot\"}"), 400, "temperature");
        assertError(p.api.post("/v1/completions", "{\"model\": \"tiny-a\", \"prompt\": [1, 2], \"max_tokens\": -3}"), 400, "max_tokens");
        assertError(p.api.post("/v1/completions", "{\"model\": \"tiny-a\", \"prompt\": [1, 99999]}"), 400, "prompt");
        assertError(p.api.post("/v1/completions", "{\"model\": \"tiny-a\", \"prompt\": \"text needs a tokenizer\"}"), 400, "prompt");
        assertError(p.api.post("/v1/completions", "{\"model\": \"gpt-4\", \"prompt\": [1]}"), 404, "model");
        assertError(p.api.post("/v1/completions", "{\"model\": \"tiny-a\", \"prompt\": [1], \"max_tokens\": 2000000}"), 400, "max_tokens");
        assertError(p.api.post("/v1/chat/completions", "{\"model\": \"tiny-a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"), 400, "messages");
        int[] huge = new int[100_000];                                  // ~300 KB of JSON, over the 200 KB limit
        assertEquals(413, p.api.post("/v1/completions", completion(huge, 1, "")).status());
        assertEquals(404, p.api.post("/v1/embeddings", "{}").status());
        greedyContinuationOfTheFixtureComesBackTokenByToken();           // still serving
    }

    static void assertError(OpenAi.Reply r, int status, String param) {
        assertEquals(status, r.status(), String.valueOf(r.body()));
        JsonNode e = r.body().get("error");
        assertNotNull(e, "OpenAI error object");
        assertTrue(e.get("message").asText().length() > 5);
        if (param != null) {
            assertEquals(param, e.get("param").asText(), e.toString());
        }
    }

    @Test
    @Order(6)
    void clientDisconnectCancelsAndTheRequestIsFreed() {
        String req = completion(tiny.prompt(7), 5000, ", \"temperature\": 1.0, \"seed\": 5, \"ignore_eos\": true, \"stream\": true");
        int[] seen = {0};
        p.api.stream("/v1/completions", req, c -> ++seen[0] < 5);        // hang up after 5 chunks
        long deadline = System.currentTimeMillis() + 15_000;
        while (System.currentTimeMillis() < deadline && runningOnDecodeWorkers() > 0) {
            sleep(100);
        }
        assertEquals(0, runningOnDecodeWorkers(), "the decode worker dropped the cancelled sequence");
    }

    @Test
    @Order(7)
    void killedDecodeWorkerMidGenerationStillDeliversEveryTokenOnce() {
        int max = 3000;
        String req = completion(tiny.prompt(150), max, ", \"temperature\": 0.8, \"seed\": 99, \"ignore_eos\": true");
        List<Integer> reference = OpenAi.ints(p.api.post("/v1/completions", req).body().get("choices").get(0).get("token_ids"));
        assertEquals(max, reference.size());
        boolean[] killed = {false};
        OpenAi.Stream s = p.api.stream("/v1/completions", req.replace("}", ", \"stream\": true}"), chunk -> {
            if (!killed[0] && chunk.path("choices").path(0).path("token_ids").size() > 0) {
                for (PlatformLauncher.Service w : p.launcher.services()) {
                    if (w.name().startsWith("decode-worker") && running(w) > 0) {
                        p.launcher.kill(w.name());
                        killed[0] = true;
                        System.out.println("killed " + w.name() + " mid-generation");
                    }
                }
            }
            return true;
        });
        assertTrue(killed[0], "a decode worker was killed while it held the sequence");
        assertTrue(s.done());
        assertEquals(reference, s.tokenIds(0), "every token exactly once, the same tokens as without the failure");
    }

    static long runningOnDecodeWorkers() {
        return p.launcher.services().stream().filter(w -> w.name().startsWith("decode-worker") && w.process().isAlive())
                .mapToLong(TinyPlatformIT::running).sum();
    }

    /** kimi_worker_running_sequences of a worker, from its Prometheus endpoint. */
    static long running(PlatformLauncher.Service w) {
        try {
            var r = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://localhost:" + w.port() + "/q/metrics")).GET().build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            for (String line : r.body().split("\n")) {
                if (line.startsWith("kimi_worker_running_sequences")) {
                    return (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
        } catch (Exception e) {
            return 0;
        }
        return 0;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
