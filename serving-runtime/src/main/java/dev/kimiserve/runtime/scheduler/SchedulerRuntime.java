package dev.kimiserve.runtime.scheduler;

import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.ControlMessage;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.ProtocolException;
import dev.kimiserve.protocol.RequestEnvelope;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.protocol.Topics;
import dev.kimiserve.runtime.kafka.KafkaSupport;
import dev.kimiserve.runtime.openai.ApiException;
import dev.kimiserve.runtime.openai.ModelContext;
import dev.kimiserve.runtime.openai.RequestParser;
import dev.kimiserve.runtime.openai.ResponseAssembly;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * Runs the {@link SchedulerCore} against Kafka: requests from {@code kimi.requests} (consumer group "kimi-scheduler"),
 * control messages and heartbeats from {@code kimi.control}, and, as the answerer of Kafka-native requests, token events
 * from partition 0 of {@code kimi.tokens}, which it assembles into complete responses on {@code kimi.responses}.
 * Consumer threads only decode and enqueue; one thread owns the core.
 */
public final class SchedulerRuntime implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(SchedulerRuntime.class.getName());
    public static final String GROUP = "kimi-scheduler";

    private final String bootstrap;
    private final ModelContext model;
    private final SchedulerCore core;
    private final LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
    private final Map<String, ResponseAssembly> nativeRequests = new HashMap<>();
    private final List<Thread> threads = new ArrayList<>();
    private final AtomicLong requestsSeen = new AtomicLong();
    private final AtomicLong nativeAnswered = new AtomicLong();
    private volatile int waiting;
    private volatile int running;
    private volatile int runningRequests;
    private volatile double slotUsage;
    private volatile int workersAlive;
    private volatile long redispatches;
    private volatile boolean assigned;
    private volatile boolean closed;
    private volatile String failure;
    private KafkaProducer<String, byte[]> producer;

    /** A Kafka-native envelope and its parsed spec. */
    private record Incoming(RequestEnvelope envelope) {
    }

    public SchedulerRuntime(String bootstrap, ModelContext model, SchedulerCore.Limits limits) {
        this.bootstrap = bootstrap;
        this.model = model;
        this.core = new SchedulerCore(limits);
    }

    public void start() {
        KafkaSupport.ensurePlatformTopics(bootstrap);
        producer = KafkaSupport.producer(bootstrap, "scheduler");
        threads.add(Thread.ofPlatform().daemon().name("scheduler-requests").start(this::pollRequests));
        threads.add(Thread.ofPlatform().daemon().name("scheduler-control").start(() -> pollPartition(Topics.CONTROL, 0, ControlMessage.class)));
        threads.add(Thread.ofPlatform().daemon().name("scheduler-tokens").start(() -> pollPartition(Topics.TOKENS, 0, TokenEvent.class)));
        threads.add(Thread.ofPlatform().daemon().name("scheduler-core").start(this::coreLoop));
        threads.add(Thread.ofPlatform().daemon().name("scheduler-heartbeat").start(this::heartbeats));
    }

    /** Tells gateways the scheduler is alive (they answer 503 while it is not). */
    private void heartbeats() {
        while (!closed) {
            try {
                producer.send(new ProducerRecord<>(Topics.CONTROL, "scheduler", Codec.write(ControlMessage.heartbeat("scheduler",
                        null, "scheduler", 0, running, null))));
                Thread.sleep(500);
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "heartbeat failed: " + e.getMessage());
            }
        }
    }


    private void pollRequests() {
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(bootstrap, "scheduler-requests", GROUP, "earliest")) {
            c.subscribe(List.of(Topics.REQUESTS), new org.apache.kafka.clients.consumer.ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(java.util.Collection<TopicPartition> partitions) {
                }

                @Override
                public void onPartitionsAssigned(java.util.Collection<TopicPartition> partitions) {
                    assigned = true;
                }
            });
            while (!closed) {
                var records = c.poll(KafkaSupport.POLL);
                for (ConsumerRecord<String, byte[]> r : records) {
                    try {
                        events.add(new Incoming(Codec.read(r.value(), RequestEnvelope.class)));
                    } catch (ProtocolException e) {
                        events.add(new Malformed(r.key(), e.getMessage()));
                    }
                }
                if (!records.isEmpty()) {
                    c.commitAsync();
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                failure = "request consumer failed: " + e;
                LOG.log(Level.ERROR, failure, e);
            }
        }
    }

    /** An unreadable request; answered with an error if it has a key. */
    private record Malformed(String key, String reason) {
    }

    private <T extends Codec.Versioned> void pollPartition(String topic, int partition, Class<T> type) {
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(bootstrap, "scheduler-" + topic, null, "latest")) {
            TopicPartition p = new TopicPartition(topic, partition);
            c.assign(List.of(p));
            c.seekToEnd(List.of(p));
            c.position(p);
            while (!closed) {
                for (ConsumerRecord<String, byte[]> r : c.poll(KafkaSupport.POLL)) {
                    try {
                        events.add(Codec.read(r.value(), type));
                    } catch (ProtocolException e) {
                        LOG.log(Level.DEBUG, "unreadable " + type.getSimpleName() + ": " + e.getMessage());
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                failure = topic + " consumer failed: " + e;
                LOG.log(Level.ERROR, failure, e);
            }
        }
    }

    private void coreLoop() {
        long nextTick = 0;
        while (!closed) {
            try {
                Object e = events.poll(50, TimeUnit.MILLISECONDS);
                long now = System.currentTimeMillis();
                if (e != null) {
                    handle(e, now);
                }
                if (now >= nextTick) {
                    perform(core.tick(now));
                    nextTick = now + 100;
                }
                waiting = core.waitingRequests();
                running = core.runningSequences();
                runningRequests = core.runningRequests();
                slotUsage = core.slotUsage();
                workersAlive = core.aliveWorkers();
                redispatches = core.redispatches();
            } catch (InterruptedException ex) {
                return;
            } catch (RuntimeException ex) {
                LOG.log(Level.ERROR, "scheduler error", ex);
            }
        }
    }

    private void handle(Object e, long now) {
        switch (e) {
            case Incoming in -> request(in.envelope(), now);
            case Malformed m -> {
                if (m.key() != null && !core.known(m.key())) {
                    core.markFinished(m.key());
                    respond(m.key(), ResponseAssembly.errorJson(ErrorInfo.badRequest("malformed request envelope: " + m.reason(), null)));
                }
            }
            case ControlMessage m -> perform(core.onControl(m, now));
            case TokenEvent t -> nativeEvent(t);
            default -> {
            }
        }
    }

    private void request(RequestEnvelope env, long now) {
        requestsSeen.incrementAndGet();
        if (env.id() == null || env.id().isBlank()) {
            LOG.log(Level.WARNING, "dropping a request without id");
            return;
        }
        if (core.known(env.id()) || nativeRequests.containsKey(env.id())) {
            return;                                                  // redelivered: answered once
        }
        GenerationSpec spec = env.spec();
        Integer reply = env.replyPartition();
        if (spec == null) {                                          // Kafka-native: validate and tokenize here
            try {
                spec = new RequestParser(model).parse(env.endpoint() == null ? "" : env.endpoint(), env.body());
            } catch (ApiException ex) {
                core.markFinished(env.id());
                respond(env.id(), ResponseAssembly.errorJson(ex.error()));
                return;
            }
            if (spec.stream()) {
                spec = new GenerationSpec(spec.kind(), spec.model(), spec.created(), spec.promptTokenIds(), spec.n(), spec.maxTokens(),
                        spec.sampling(), spec.stopStrings(), spec.stopTokenIds(), spec.logprobs(), spec.topLogprobs(), false, false,
                        spec.returnTokenIds(), spec.echo(), spec.detokenize(), spec.deadlineMillis(), spec.priority(), spec.user());
            }
            nativeRequests.put(env.id(), new ResponseAssembly(env.id(), spec, model.tokenizer()));
            reply = 0;
        }
        perform(core.onRequest(env.id(), spec, reply, now));
    }

    private void nativeEvent(TokenEvent t) {
        ResponseAssembly a = nativeRequests.get(t.requestId());
        if (a == null || !a.accept(t)) {
            return;
        }
        if (a.complete()) {
            nativeRequests.remove(t.requestId());
            respond(t.requestId(), a.finalResponse().toString());
        }
    }

    private void respond(String id, String json) {
        producer.send(new ProducerRecord<>(Topics.RESPONSES, id, json.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        nativeAnswered.incrementAndGet();
    }

    private void perform(List<SchedulerCore.Action> actions) {
        for (SchedulerCore.Action a : actions) {
            switch (a) {
                case SchedulerCore.SendTask t -> producer.send(new ProducerRecord<>(Topics.workerTasks(t.workerId()), t.task().sequenceId(),
                        Codec.write(t.task())));
                case SchedulerCore.SendEvent ev -> producer.send(new ProducerRecord<>(Topics.TOKENS,
                        ev.replyPartition() == null ? 0 : ev.replyPartition(), ev.requestId(), Codec.write(ev.event())));
                case SchedulerCore.Broadcast b -> producer.send(new ProducerRecord<>(Topics.CONTROL, b.message().requestId(),
                        Codec.write(b.message())));
                case SchedulerCore.Finished f -> {
                }
                case SchedulerCore.Admitted admitted -> queueTimeListener.accept(admitted.queuedMillis());
            }
        }
    }

    private volatile java.util.function.LongConsumer queueTimeListener = millis -> {
    };

    /** Told how long each request waited for admission, in milliseconds. */
    public void onQueueTime(java.util.function.LongConsumer listener) {
        this.queueTimeListener = listener;
    }

    // ---- gauges for metrics and health ----

    public boolean ready() {
        return assigned && failure == null && !closed;
    }

    public String failure() {
        return failure;
    }

    public int waitingRequests() {
        return waiting;
    }

    public int runningSequences() {
        return running;
    }

    public int runningRequests() {
        return runningRequests;
    }

    public double slotUsage() {
        return slotUsage;
    }

    public int workersAlive() {
        return workersAlive;
    }

    public long redispatches() {
        return redispatches;
    }

    public long requestsSeen() {
        return requestsSeen.get();
    }

    public long nativeAnswered() {
        return nativeAnswered.get();
    }

    @Override
    public void close() {
        closed = true;
        KafkaSupport.stop(threads, producer);
    }
}
