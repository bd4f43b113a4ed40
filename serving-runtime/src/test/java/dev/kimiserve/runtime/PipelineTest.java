package dev.kimiserve.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.testing.TinyA;
import dev.kimiserve.kafka.EmbeddedKafka;
import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.RequestEnvelope;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.runtime.gateway.GatewayRuntime;
import dev.kimiserve.runtime.kvstore.InMemoryKvStore;
import dev.kimiserve.runtime.openai.ModelContext;
import dev.kimiserve.runtime.openai.RequestParser;
import dev.kimiserve.runtime.openai.ResponseAssembly;
import dev.kimiserve.runtime.scheduler.SchedulerCore;
import dev.kimiserve.runtime.scheduler.SchedulerRuntime;
import dev.kimiserve.runtime.worker.WorkerConfig;
import dev.kimiserve.runtime.worker.WorkerRuntime;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The serving runtime in one JVM against a real (in-JVM KRaft) Kafka broker: gateway -> scheduler -> prefill worker ->
 * kv-store -> decode worker -> gateway, on tiny-a, token by token against transformers' greedy continuation.
 */
class PipelineTest {
    static EmbeddedKafka kafka;
    static SchedulerRuntime scheduler;
    static WorkerRuntime prefill;
    static WorkerRuntime decode;
    static GatewayRuntime gateway;
    static ModelContext model;
    static InMemoryKvStore kv = new InMemoryKvStore();

    @BeforeAll
    static void start() {
        kafka = EmbeddedKafka.start(0, null);
        model = ModelContext.load(SharedFixtures.tinyA(), "tiny-a", 4096);
        scheduler = new SchedulerRuntime(kafka.bootstrapServers(), model, new SchedulerCore.Limits(64, 64, 0, 3000, 60_000, 10_000));
        scheduler.start();
        prefill = new WorkerRuntime(new WorkerConfig("p1", "prefill", SharedFixtures.tinyA(), kafka.bootstrapServers(), "", 1, 8, 64, 200), kv);
        decode = new WorkerRuntime(new WorkerConfig("d1", "decode", SharedFixtures.tinyA(), kafka.bootstrapServers(), "", 1, 8, 64, 200), kv);
        prefill.start();
        decode.start();
        gateway = new GatewayRuntime(kafka.bootstrapServers(), 1, 2000);
        gateway.start();
        long deadline = System.currentTimeMillis() + 30_000;
        while (!gateway.ready() && System.currentTimeMillis() < deadline) {
            sleep(50);
        }
        assertTrue(gateway.ready(), "platform not ready: " + gateway.whyNotServing());
    }

    @AfterAll
    static void stop() {
        gateway.close();
        prefill.close();
        decode.close();
        scheduler.close();
        kafka.close();
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void greedyTokensThroughPrefillAndDecodeWorkersMatchTransformers() throws Exception {
        try (TinyA tiny = new TinyA()) {
            int[] prompt = tiny.prompt(7);
            int[] expected = tiny.ids("generate.7.new_tokens");
            JsonNode body = new ObjectMapper().readTree("{\"model\": \"tiny-a\", \"prompt\": " + java.util.Arrays.toString(prompt)
                    + ", \"max_tokens\": 24, \"temperature\": 0, \"ignore_eos\": true, \"return_token_ids\": true}");
            GenerationSpec spec = new RequestParser(model).parse(RequestEnvelope.COMPLETIONS, body);
            ResponseAssembly assembly = new ResponseAssembly("cmpl-1", spec, null);
            CompletableFuture<JsonNode> done = new CompletableFuture<>();
            gateway.submit(new RequestEnvelope(Codec.VERSION, "cmpl-1", RequestEnvelope.COMPLETIONS, body, spec, 1, System.currentTimeMillis()),
                    (TokenEvent e) -> {
                        synchronized (assembly) {
                            if (assembly.accept(e) && assembly.complete()) {
                                done.complete(assembly.finalResponse());
                            }
                        }
                    });
            JsonNode response = done.get(60, TimeUnit.SECONDS);
            JsonNode ids = response.get("choices").get(0).get("token_ids");
            int[] got = new int[ids.size()];
            for (int i = 0; i < got.length; i++) {
                got[i] = ids.get(i).asInt();
            }
            assertArrayEquals(expected, got);
            assertEquals("length", response.get("choices").get(0).get("finish_reason").asText());
            assertEquals(7, response.get("usage").get("prompt_tokens").asInt());
            assertTrue(kv.history().contains("put seq/cmpl-1/0"), "the prompt state went through the kv-store: " + kv.history());
        }
    }
}
