package dev.kimiserve.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.state.SequenceState;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** The closed-loop load of {@code kimi bench-serving} and its two targets. */
final class ServingLoad {
    private ServingLoad() {
    }

    /** Token emission times of one request, from the moment it was sent (nanoTime). */
    record Timeline(long sentAt, long[] tokenAt) {
    }

    /** Latencies over all requests of one concurrency level. */
    record Result(List<Timeline> timelines, long wallNanos) {
        double ttftMs(int percentile) {
            return percentile(timelines.stream().mapToLong(t -> t.tokenAt()[0] - t.sentAt()).toArray(), percentile) / 1e6;
        }

        double itlMs(int percentile) {
            List<Long> gaps = new ArrayList<>();
            for (Timeline t : timelines) {
                for (int i = 1; i < t.tokenAt().length; i++) {
                    gaps.add(t.tokenAt()[i] - t.tokenAt()[i - 1]);
                }
            }
            return percentile(gaps.stream().mapToLong(Long::longValue).toArray(), percentile) / 1e6;
        }

        double e2eMs(int percentile) {
            return percentile(timelines.stream().mapToLong(t -> t.tokenAt()[t.tokenAt().length - 1] - t.sentAt()).toArray(), percentile) / 1e6;
        }

        double outputTokensPerSecond() {
            return timelines.stream().mapToLong(t -> t.tokenAt().length).sum() / (wallNanos / 1e9);
        }

        /** Nearest-rank percentile. */
        static double percentile(long[] values, int p) {
            if (values.length == 0) {
                return Double.NaN;
            }
            long[] v = values.clone();
            Arrays.sort(v);
            int rank = (int) Math.ceil(p / 100.0 * v.length);
            return v[Math.max(0, Math.min(v.length - 1, rank - 1))];
        }
    }

    /** Something that generates streamed tokens for prompts. */
    interface Target {
        /** One streamed generation; returns when its last token arrived. */
        Timeline generate(int[] prompt, int maxTokens) throws Exception;

        /** Untimed: ten requests one by one, then {@code clients} at once, so that the JIT has compiled both paths. */
        default void warmUp(int[] prompt, int maxTokens, int clients) throws Exception {
            for (int i = 0; i < 10; i++) {
                generate(prompt, maxTokens);
            }
            run(clients, 1, Collections.nCopies(clients, prompt), maxTokens);
        }

        /** {@code clients} closed-loop clients, each sending {@code perClient} of the prompts in turn. */
        default Result run(int clients, int perClient, List<int[]> prompts, int maxTokens) throws Exception {
            List<Timeline> timelines = Collections.synchronizedList(new ArrayList<>());
            long start = System.nanoTime();
            try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
                List<Future<?>> done = new ArrayList<>();
                for (int c = 0; c < clients; c++) {
                    int client = c;
                    done.add(pool.submit(() -> {
                        for (int i = 0; i < perClient; i++) {
                            timelines.add(generate(prompts.get(client * perClient + i), maxTokens));
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
            }
            return new Result(List.copyOf(timelines), System.nanoTime() - start);
        }
    }

    /** Streamed {@code /v1/completions} through a running platform. */
    static final class Platform implements Target, AutoCloseable {
        private static final ObjectMapper JSON = new ObjectMapper();
        private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        private final String base;
        private final String modelName;

        Platform(String url, String modelName) throws Exception {
            this.base = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
            this.modelName = modelName != null ? modelName : firstModel();
        }

        private String firstModel() throws Exception {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET().build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) {
                throw new IllegalStateException("GET /v1/models answered " + r.statusCode() + ": " + r.body());
            }
            return JSON.readTree(r.body()).get("data").get(0).get("id").asText();
        }

        @Override
        public Timeline generate(int[] prompt, int maxTokens) throws Exception {
            String body = "{\"model\": " + JSON.writeValueAsString(modelName) + ", \"prompt\": " + Arrays.toString(prompt)
                    + ", \"max_tokens\": " + maxTokens + ", \"temperature\": 0, \"ignore_eos\": true, \"stream\": true, \"return_token_ids\": true}";
            long sent = System.nanoTime();
            HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                    .header("Content-Type", "application/json").timeout(Duration.ofMinutes(10))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
            long[] at = new long[maxTokens];
            int n = 0;
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                if (r.statusCode() != 200) {
                    throw new IllegalStateException("the platform answered " + r.statusCode() + ": " + in.readLine());
                }
                for (String line; (line = in.readLine()) != null && !line.equals("data: [DONE]"); ) {
                    if (line.startsWith("data: {")) {
                        long now = System.nanoTime();
                        JsonNode chunk = JSON.readTree(line.substring(6));
                        for (JsonNode choice : chunk.path("choices")) {
                            for (int k = 0; k < choice.path("token_ids").size() && n < at.length; k++) {
                                at[n++] = now;
                            }
                        }
                    }
                }
            }
            if (n != maxTokens) {
                throw new IllegalStateException("expected " + maxTokens + " tokens, the stream carried " + n);
            }
            return new Timeline(sent, at);
        }

        @Override
        public void close() {
            http.close();
        }
    }

    /**
     * The worker's serving loop in-process: each iteration one batched decode step for every running sequence, then
     * the oldest waiting prompt prefilled (in chunks of 512), greedy sampling, tokens time-stamped as sampled.
     */
    static final class InProcess implements Target, AutoCloseable {
        private static final int PREFILL_CHUNK = 512;
        private final Engine engine;
        private final int vocab;
        private final LinkedBlockingQueue<Job> submitted = new LinkedBlockingQueue<>();
        private final Thread loop;
        private volatile boolean closed;

        private static final class Job {
            final int[] prompt;
            final long[] tokenAt;
            final CountDownLatch finished = new CountDownLatch(1);
            SequenceState state;
            int produced;
            int next;

            Job(int[] prompt, int maxTokens) {
                this.prompt = prompt;
                this.tokenAt = new long[maxTokens];
            }
        }

        InProcess(Engine engine) {
            this.engine = engine;
            this.vocab = engine.config().vocabSize();
            this.loop = Thread.ofPlatform().daemon().name("serving-loop").start(this::serve);
        }

        @Override
        public Timeline generate(int[] prompt, int maxTokens) throws InterruptedException {
            Job job = new Job(prompt, maxTokens);
            long sent = System.nanoTime();
            submitted.add(job);
            job.finished.await();
            return new Timeline(sent, job.tokenAt);
        }

        private void serve() {
            List<Job> active = new ArrayList<>();
            ArrayDeque<Job> waiting = new ArrayDeque<>();
            float[] logits = new float[0];
            try {
                while (!closed) {
                    if (active.isEmpty() && waiting.isEmpty()) {
                        Job j = submitted.poll(20, TimeUnit.MILLISECONDS);
                        if (j != null) {
                            waiting.add(j);
                        }
                        continue;
                    }
                    submitted.drainTo(waiting);
                    if (!active.isEmpty()) {
                        int b = active.size();
                        if (logits.length < b * vocab) {
                            logits = new float[b * vocab];
                        }
                        int[] inputs = new int[b];
                        SequenceState[] states = new SequenceState[b];
                        for (int i = 0; i < b; i++) {
                            inputs[i] = active.get(i).next;
                            states[i] = active.get(i).state;
                        }
                        engine.decode(inputs, states, logits);
                        for (int i = 0; i < b; i++) {
                            emit(active.get(i), logits, i * vocab);
                        }
                        active.removeIf(j -> j.produced == j.tokenAt.length);
                    }
                    Job j = waiting.poll();
                    if (j != null) {
                        j.state = engine.newState();
                        float[] last = null;
                        for (int from = 0; from < j.prompt.length; from += PREFILL_CHUNK) {
                            last = engine.prefill(Arrays.copyOfRange(j.prompt, from, Math.min(j.prompt.length, from + PREFILL_CHUNK)),
                                    j.state, Engine.Logits.LAST);
                        }
                        emit(j, last, 0);
                        if (j.produced < j.tokenAt.length) {
                            active.add(j);
                        }
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public void close() throws InterruptedException {
            closed = true;
            loop.join(5000);
        }

        private void emit(Job j, float[] logits, int offset) {
            int best = offset;
            for (int i = offset + 1; i < offset + vocab; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            j.next = best - offset;
            j.tokenAt[j.produced++] = System.nanoTime();
            if (j.produced == j.tokenAt.length) {
                j.finished.countDown();
            }
        }
    }
}
