package dev.kimiserve.runtime.worker;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.state.StateCodec;
import dev.kimiserve.core.state.StateFormatException;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.ControlMessage;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.ProtocolException;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.protocol.Topics;
import dev.kimiserve.protocol.WorkerTask;
import dev.kimiserve.runtime.kafka.KafkaSupport;
import dev.kimiserve.runtime.kvstore.KvStore;
import dev.kimiserve.runtime.kvstore.KvStoreClient;
import java.lang.System.Logger.Level;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * A worker of the combined placement (all layers in one process), in the prefill pool, the decode pool or both.
 * One engine thread alternates between a decode step for every running sequence (continuous batching: sequences join
 * and leave between steps) and one chunk of the oldest waiting prompt. After a prefill the first token is sent, the
 * state goes to the kv-store and the scheduler hands the sequence to a decode worker, which loads the state, feeds back
 * the tokens already sent and continues the same random stream.
 */
public final class WorkerRuntime implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(WorkerRuntime.class.getName());

    private final WorkerConfig cfg;
    private final LinkedBlockingQueue<WorkerTask> inbox = new LinkedBlockingQueue<>();
    private final Set<String> cancelled = Collections.newSetFromMap(Collections.synchronizedMap(new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> e) {
            return size() > 100_000;
        }
    }));
    private final Map<String, Integer> running = new ConcurrentHashMap<>();
    private final List<Sequence> active = new ArrayList<>();
    private final Deque<PrefillJob> prefills = new ArrayDeque<>();
    private final ExecutorService background = Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("worker-kv").factory());
    private final List<Thread> threads = new ArrayList<>();
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong tokensOut = new AtomicLong();
    /** Tells this process apart from an earlier one under the same worker id. */
    private final String instance = java.util.UUID.randomUUID().toString();
    private volatile boolean closed;
    private volatile boolean modelLoaded;
    private volatile boolean consumersAssigned;
    private volatile String failure;
    private LoadedModel model;
    private Engine engine;
    private KimiTokenizer tokenizer;
    private KvStore kv;
    private KafkaProducer<String, byte[]> producer;
    private float[] logits = new float[0];

    /** A prompt being prefilled in chunks. */
    private record PrefillJob(WorkerTask task, SequenceState state, int[] offset) {
    }

    public WorkerRuntime(WorkerConfig cfg) {
        this(cfg, null);
    }

    /** With a given kv-store (tests); null means the kv-store service at {@code cfg.kvStoreUrl()}. */
    public WorkerRuntime(WorkerConfig cfg, KvStore kvStore) {
        this.cfg = cfg;
        this.kv = kvStore;
    }

    public WorkerConfig config() {
        return cfg;
    }

    /** Loads the model, connects to Kafka and the kv-store, starts the threads. */
    public void start() {
        LOG.log(Level.INFO, "worker " + cfg.workerId() + " (" + cfg.role() + "): loading model " + cfg.modelDir());
        model = LoadedModel.open(cfg.modelDir());
        engine = Backends.create("auto", model.weights(), cfg.threads());
        tokenizer = KimiTokenizer.present(cfg.modelDir()) ? KimiTokenizer.load(cfg.modelDir()) : null;
        engine.prefill(new int[]{0, 1, 2}, engine.newState(), Engine.Logits.LAST);   // warm the kernels up
        modelLoaded = true;
        LOG.log(Level.INFO, "worker " + cfg.workerId() + ": model loaded (" + model.config().numLayers() + " layers, backend " + engine.backend() + ")");
        if (kv == null) {
            kv = new KvStoreClient(cfg.kvStoreUrl());
        }
        KafkaSupport.ensurePlatformTopics(cfg.bootstrap());
        KafkaSupport.ensureTopics(cfg.bootstrap(), Map.of(Topics.workerTasks(cfg.workerId()), 1));
        producer = KafkaSupport.producer(cfg.bootstrap(), "worker-" + cfg.workerId());
        threads.add(Thread.ofPlatform().daemon().name("worker-tasks").start(this::pollTasks));
        threads.add(Thread.ofPlatform().daemon().name("worker-control").start(this::pollControl));
        threads.add(Thread.ofPlatform().daemon().name("worker-heartbeat").start(this::heartbeats));
        threads.add(Thread.ofPlatform().daemon().name("worker-engine").start(this::engineLoop));
    }

    public boolean started() {
        return modelLoaded;
    }

    /** Ready to take tasks: model loaded, Kafka assignments done, kv-store reachable, no fatal failure. */
    public boolean ready() {
        return modelLoaded && consumersAssigned && failure == null && !closed;
    }

    public String failure() {
        return failure;
    }

    public int runningSequences() {
        return running.size();
    }

    public long decodeSteps() {
        return steps.get();
    }

    public long tokensGenerated() {
        return tokensOut.get();
    }

    public boolean kvStoreReachable() {
        return kv != null && kv.reachable();
    }

    // ---- Kafka threads ----

    /**
     * Reads this worker's task topic from its end: tasks left there by an earlier process under the same id belong to
     * attempts the scheduler re-dispatched when that process went silent or this one announced a new instance.
     * Heartbeats (and so dispatch to this worker) start only once the position is fixed, so no task is missed.
     */
    private void pollTasks() {
        TopicPartition partition = new TopicPartition(Topics.workerTasks(cfg.workerId()), 0);
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(cfg.bootstrap(), "worker-" + cfg.workerId() + "-tasks", null, "latest")) {
            c.assign(List.of(partition));
            c.seekToEnd(List.of(partition));
            c.position(partition);
            consumersAssigned = true;
            while (!closed) {
                for (ConsumerRecord<String, byte[]> r : c.poll(KafkaSupport.POLL)) {
                    try {
                        inbox.add(Codec.read(r.value(), WorkerTask.class));
                    } catch (ProtocolException e) {
                        LOG.log(Level.WARNING, "dropping unreadable task at offset " + r.offset() + ": " + e.getMessage());
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                failure = "task consumer failed: " + e;
                LOG.log(Level.ERROR, failure, e);
            }
        }
    }

    private void pollControl() {
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(cfg.bootstrap(), "worker-" + cfg.workerId() + "-control", null, "latest")) {
            TopicPartition p = new TopicPartition(Topics.CONTROL, 0);
            c.assign(List.of(p));
            c.seekToEnd(List.of(p));
            c.position(p);
            while (!closed) {
                for (ConsumerRecord<String, byte[]> r : c.poll(KafkaSupport.POLL)) {
                    try {
                        ControlMessage m = Codec.read(r.value(), ControlMessage.class);
                        if (ControlMessage.CANCEL.equals(m.type()) && m.requestId() != null) {
                            cancelled.add(m.requestId());
                        }
                    } catch (ProtocolException e) {
                        LOG.log(Level.DEBUG, "unreadable control message: " + e.getMessage());
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                failure = "control consumer failed: " + e;
                LOG.log(Level.ERROR, failure, e);
            }
        }
    }

    private void heartbeats() {
        while (!closed) {
            try {
                if (!consumersAssigned) {
                    Thread.sleep(20);
                    continue;
                }
                send(Topics.CONTROL, cfg.workerId(), ControlMessage.heartbeat(cfg.workerId(), instance, cfg.role(), cfg.maxRunning(),
                        running.size(), List.copyOf(running.keySet())));
                Thread.sleep(cfg.heartbeatMillis());
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "heartbeat failed: " + e.getMessage());
            }
        }
    }

    // ---- the engine loop ----

    private void engineLoop() {
        while (!closed) {
            try {
                if (active.isEmpty() && prefills.isEmpty()) {
                    WorkerTask t = inbox.poll(20, TimeUnit.MILLISECONDS);
                    if (t != null) {
                        accept(t);
                    }
                    continue;
                }
                for (WorkerTask t; (t = inbox.poll()) != null; ) {
                    accept(t);
                }
                dropCancelled();
                if (!active.isEmpty()) {
                    decodeStep();
                }
                if (!prefills.isEmpty()) {
                    prefillStep();
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "engine loop error; failing the sequences in hand", e);
                failEverythingInHand(e);
            }
        }
    }

    /** After an unexpected engine error: fail every running sequence (the scheduler reports it) instead of retrying it. */
    private void failEverythingInHand(RuntimeException e) {
        ErrorInfo error = ErrorInfo.server("worker " + cfg.workerId() + " failed: " + e);
        for (Sequence s : List.copyOf(active)) {
            fail(s.task, error);
        }
        active.clear();
        for (PrefillJob j : List.copyOf(prefills)) {
            fail(j.task(), error);
        }
        prefills.clear();
    }

    private void accept(WorkerTask t) {
        if (cancelled.contains(t.requestId())) {
            return;
        }
        Integer seen = running.get(t.sequenceId());
        if (seen != null && seen >= t.attempt()) {
            return;                                                   // a duplicate of a task we already run
        }
        try {
            String invalid = invalidPrompt(t);
            if (invalid != null) {
                fail(t, new ErrorInfo(400, invalid, "invalid_request_error", "prompt", null));
            } else if (WorkerTask.PREFILL.equals(t.type()) && cfg.prefills()) {
                prefills.add(new PrefillJob(t, engine.newState(), new int[1]));
                running.put(t.sequenceId(), t.attempt());
            } else if (WorkerTask.DECODE.equals(t.type()) && cfg.decodes()) {
                byte[] blob = kv.get(t.stateKey()).orElseThrow(() -> new StateFormatException(
                        "the state of " + t.sequenceId() + " is not in the kv-store (key " + t.stateKey() + ")"));
                SequenceState state = StateCodec.decode(blob, model.config());
                Sequence s = new Sequence(t, state, tokenizer, model.config().vocabSize());
                s.replay(t.generated() == null ? new int[0] : t.generated());
                active.add(s);
                running.put(t.sequenceId(), t.attempt());
            } else {
                fail(t, ErrorInfo.server("worker " + cfg.workerId() + " (" + cfg.role() + ") cannot run " + t.type() + " tasks"));
            }
        } catch (StateFormatException | KvStoreClient.KvStoreException e) {
            fail(t, new ErrorInfo(500, "cannot resume the sequence: " + e.getMessage(), "server_error", null, "state_unavailable"));
        }
    }

    /** The gateway validated the prompt against the same model; a task from elsewhere gets checked again here. */
    private String invalidPrompt(WorkerTask t) {
        int[] prompt = t.spec() == null ? null : t.spec().promptTokenIds();
        if (prompt == null || prompt.length == 0) {
            return "the task carries no prompt tokens";
        }
        int vocab = model.config().vocabSize();
        for (int id : prompt) {
            if (id < 0 || id >= vocab) {
                return "prompt token id " + id + " is outside the model's vocabulary of " + vocab;
            }
        }
        return null;
    }

    private void dropCancelled() {
        active.removeIf(s -> {
            if (s.cancelled || cancelled.contains(s.task.requestId())) {
                engine.release(s.state);
                finishQuietly(s.task);
                return true;
            }
            return false;
        });
        prefills.removeIf(j -> {
            if (cancelled.contains(j.task().requestId())) {
                engine.release(j.state());
                running.remove(j.task().sequenceId());
                return true;
            }
            return false;
        });
    }

    /** One prompt chunk of the oldest waiting prefill; at the prompt's end: first token, state to the kv-store. */
    private void prefillStep() {
        PrefillJob job = prefills.peek();
        int[] prompt = job.task().spec().promptTokenIds();
        int from = job.offset()[0];
        int to = Math.min(prompt.length, from + cfg.prefillChunk());
        float[] last = engine.prefill(java.util.Arrays.copyOfRange(prompt, from, to), job.state(), Engine.Logits.LAST);
        job.offset()[0] = to;
        if (to < prompt.length) {
            return;
        }
        prefills.poll();
        WorkerTask t = job.task();
        Sequence s = new Sequence(t, job.state(), tokenizer, model.config().vocabSize());
        boolean finished = sample(s, last, 0);
        if (finished) {
            done(s, null);
            return;
        }
        String key = "seq/" + t.sequenceId();
        byte[] blob = StateCodec.encode(job.state(), model.config());
        engine.release(job.state());                                   // decode continues from the stored copy
        try {
            kv.put(key, blob);
        } catch (KvStoreClient.KvStoreException e) {
            fail(t, new ErrorInfo(503, "cannot store the prompt state: " + e.getMessage(), "service_unavailable", null, "kv_store"));
            return;
        }
        running.remove(t.sequenceId());
        send(Topics.CONTROL, t.requestId(), ControlMessage.prefillDone(t.requestId(), t.sequenceId(), cfg.workerId(), key,
                new int[]{s.nextInput}));
    }

    /** One decode step for every running sequence (those still replaying feed a known token and skip sampling). */
    private void decodeStep() {
        int b = active.size();
        int vocab = model.config().vocabSize();
        if (logits.length < b * vocab) {
            logits = new float[b * vocab];
        }
        int[] inputs = new int[b];
        boolean[] sampleAfter = new boolean[b];
        SequenceState[] states = new SequenceState[b];
        for (int i = 0; i < b; i++) {
            Sequence s = active.get(i);
            inputs[i] = s.toFeed.isEmpty() ? s.nextInput : s.toFeed.poll();
            sampleAfter[i] = s.toFeed.isEmpty();
            states[i] = s.state;
        }
        engine.decode(inputs, states, logits);
        steps.incrementAndGet();
        List<Sequence> ended = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            Sequence s = active.get(i);
            if (sampleAfter[i] && sample(s, logits, i * vocab)) {
                ended.add(s);
            }
        }
        for (Sequence s : ended) {
            active.remove(s);
            done(s, s.task.stateKey());
        }
    }

    /** Samples the next token of a sequence from its logits and sends it; returns true when the sequence ended. */
    private boolean sample(Sequence s, float[] lg, int off) {
        int vocab = model.config().vocabSize();
        int token = s.sampler.sample(lg, off, s.history);
        if (s.history != null) {
            s.history.addOutput(token);
        }
        int index = s.generated++;
        s.nextInput = token;
        Double logprob = null;
        List<TokenEvent.TopLogprob> top = null;
        if (s.spec.logprobs()) {
            double logZ = Logprobs.logNormalizer(lg, off, vocab);
            logprob = lg[off + token] - logZ;
            top = s.spec.topLogprobs() > 0 ? Logprobs.top(lg, off, vocab, s.spec.topLogprobs(), logZ) : List.of();
        }
        boolean stopToken = s.stopIds.contains(token);
        boolean special = tokenizer != null && tokenizer.specialTokens().isSpecial(token);
        String text = s.text == null || stopToken || special ? (s.text == null ? null : "") : s.text.push(token);
        String finish = null;
        if (stopToken || (s.text != null && s.text.stopped())) {
            finish = "stop";
        } else if (s.generated >= s.spec.maxTokens() || s.state.position() + 1 >= model.config().maxContext()) {
            finish = "length";
        }
        if (finish != null && s.text != null && !s.text.stopped()) {
            text = text + s.text.finish();
        }
        tokensOut.incrementAndGet();
        send(Topics.TOKENS, s.task.requestId(), s.task.replyPartition(), new TokenEvent(Codec.VERSION, s.task.requestId(),
                s.task.choice(), index, token, text, logprob, top, finish, finish != null ? s.spec.promptTokenIds().length : null,
                null, System.nanoTime()));
        return finish != null;
    }

    private void done(Sequence s, String stateKey) {
        engine.release(s.state);
        running.remove(s.id());
        send(Topics.CONTROL, s.task.requestId(), ControlMessage.sequenceDone(s.task.requestId(), s.id(), cfg.workerId(), "done"));
        if (stateKey != null) {
            background.execute(() -> {
                try {
                    kv.delete(stateKey);
                } catch (RuntimeException e) {
                    LOG.log(Level.DEBUG, "could not delete " + stateKey + ": " + e.getMessage());
                }
            });
        }
    }

    private void finishQuietly(WorkerTask t) {
        running.remove(t.sequenceId());
        if (t.stateKey() != null) {
            background.execute(() -> {
                try {
                    kv.delete(t.stateKey());
                } catch (RuntimeException ignored) {
                    // the store evicts it eventually
                }
            });
        }
    }

    private void fail(WorkerTask t, ErrorInfo error) {
        running.remove(t.sequenceId());
        LOG.log(Level.WARNING, "task " + t.type() + " " + t.sequenceId() + " failed: " + error.message());
        send(Topics.CONTROL, t.requestId(), ControlMessage.sequenceFailed(t.requestId(), t.sequenceId(), cfg.workerId(), error));
    }

    private void send(String topic, String key, Object message) {
        producer.send(new ProducerRecord<>(topic, key, Codec.write(message)));
    }

    private void send(String topic, String key, Integer partition, Object message) {
        int p = partition == null ? 0 : partition;
        producer.send(new ProducerRecord<>(topic, p, key, Codec.write(message)));
    }

    @Override
    public void close() {
        closed = true;
        KafkaSupport.stopThreads(threads, java.time.Duration.ofSeconds(3));
        background.shutdown();
        if (producer != null) {
            producer.close(java.time.Duration.ofSeconds(2));
        }
        if (engine != null) {
            engine.close();
        }
        if (model != null) {
            model.close();
        }
    }
}
