package dev.kimiserve.runtime.gateway;

import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.ControlMessage;
import dev.kimiserve.protocol.ProtocolException;
import dev.kimiserve.protocol.RequestEnvelope;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.protocol.Topics;
import dev.kimiserve.runtime.kafka.KafkaSupport;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * The gateway's Kafka side: publishes prepared requests to {@code kimi.requests} with this gateway's reply partition,
 * reads only that partition of {@code kimi.tokens} (so replicas never read each other's tokens) and hands each event to
 * the listener of its request; publishes cancellations; watches heartbeats to know whether the platform can serve.
 */
public final class GatewayRuntime implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(GatewayRuntime.class.getName());

    private final String bootstrap;
    private final int replyPartition;
    private final long livenessMillis;
    private final Map<String, Consumer<TokenEvent>> listeners = new ConcurrentHashMap<>();
    private final Map<String, Long> workerSeen = new ConcurrentHashMap<>();
    private final List<Thread> threads = new ArrayList<>();
    private volatile long schedulerSeen;
    private volatile boolean assigned;
    private volatile boolean closed;
    private KafkaProducer<String, byte[]> producer;

    /**
     * @param replyPartition partition of kimi.tokens this gateway reads (1 .. {@link Topics#TOKEN_PARTITIONS} - 1)
     */
    public GatewayRuntime(String bootstrap, int replyPartition, long livenessMillis) {
        if (replyPartition < 1 || replyPartition >= Topics.TOKEN_PARTITIONS) {
            throw new IllegalArgumentException("the gateway's tokens partition must be in 1.." + (Topics.TOKEN_PARTITIONS - 1)
                    + " (0 is the Kafka-native answerer's), got " + replyPartition);
        }
        this.bootstrap = bootstrap;
        this.replyPartition = replyPartition;
        this.livenessMillis = livenessMillis;
    }

    public void start() {
        KafkaSupport.ensurePlatformTopics(bootstrap);
        producer = KafkaSupport.producer(bootstrap, "gateway-" + replyPartition);
        threads.add(Thread.ofPlatform().daemon().name("gateway-tokens").start(this::pollTokens));
        threads.add(Thread.ofPlatform().daemon().name("gateway-control").start(this::pollControl));
    }

    public int replyPartition() {
        return replyPartition;
    }

    /** Registers the listener, then publishes the request. */
    public void submit(RequestEnvelope envelope, Consumer<TokenEvent> listener) {
        listeners.put(envelope.id(), listener);
        producer.send(new ProducerRecord<>(Topics.REQUESTS, envelope.id(), Codec.write(envelope)), (meta, ex) -> {
            if (ex != null) {
                LOG.log(Level.WARNING, "could not publish request " + envelope.id() + ": " + ex.getMessage());
                Consumer<TokenEvent> l = listeners.remove(envelope.id());
                if (l != null) {
                    l.accept(new TokenEvent(Codec.VERSION, envelope.id(), 0, 0, null, null, null, null, null, null,
                            dev.kimiserve.protocol.ErrorInfo.unavailable("the request could not be queued: " + ex.getMessage()), null));
                }
            }
        });
    }

    /** Stops listening to a request (it ended). */
    public void release(String requestId) {
        listeners.remove(requestId);
    }

    /** The client went away: free the request everywhere. */
    public void cancel(String requestId) {
        listeners.remove(requestId);
        producer.send(new ProducerRecord<>(Topics.CONTROL, requestId, Codec.write(ControlMessage.cancel(requestId))));
    }


    private void pollTokens() {
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(bootstrap, "gateway-tokens-" + replyPartition, null, "latest")) {
            TopicPartition p = new TopicPartition(Topics.TOKENS, replyPartition);
            c.assign(List.of(p));
            c.seekToEnd(List.of(p));
            c.position(p);
            assigned = true;
            while (!closed) {
                for (ConsumerRecord<String, byte[]> r : c.poll(KafkaSupport.POLL)) {
                    Consumer<TokenEvent> l = listeners.get(r.key());
                    if (l == null) {
                        continue;
                    }
                    try {
                        l.accept(Codec.read(r.value(), TokenEvent.class));
                    } catch (ProtocolException e) {
                        LOG.log(Level.WARNING, "unreadable token event for " + r.key() + ": " + e.getMessage());
                    } catch (RuntimeException e) {
                        LOG.log(Level.WARNING, "listener of " + r.key() + " failed: " + e);
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                assigned = false;
                LOG.log(Level.ERROR, "tokens consumer failed", e);
            }
        }
    }

    private void pollControl() {
        try (KafkaConsumer<String, byte[]> c = KafkaSupport.consumer(bootstrap, "gateway-control-" + replyPartition, null, "latest")) {
            TopicPartition p = new TopicPartition(Topics.CONTROL, 0);
            c.assign(List.of(p));
            c.seekToEnd(List.of(p));
            c.position(p);
            while (!closed) {
                for (ConsumerRecord<String, byte[]> r : c.poll(java.time.Duration.ofMillis(100))) {
                    try {
                        ControlMessage m = Codec.read(r.value(), ControlMessage.class);
                        if (ControlMessage.HEARTBEAT.equals(m.type())) {
                            if ("scheduler".equals(m.role())) {
                                schedulerSeen = System.currentTimeMillis();
                            } else if (m.workerId() != null) {
                                workerSeen.put(m.workerId() + "|" + m.role(), System.currentTimeMillis());
                            }
                        }
                    } catch (ProtocolException ignored) {
                        // not ours to judge
                    }
                }
            }
        } catch (RuntimeException e) {
            if (!closed) {
                LOG.log(Level.ERROR, "control consumer failed", e);
            }
        }
    }

    /** Kafka ready and the scheduler plus at least one prefill-capable and one decode-capable worker alive. */
    public boolean ready() {
        return assigned && !closed && whyNotServing() == null;
    }

    /** Why requests would not be served now, or null. */
    public String whyNotServing() {
        long now = System.currentTimeMillis();
        if (!assigned) {
            return "the gateway is not connected to Kafka yet";
        }
        if (now - schedulerSeen > livenessMillis) {
            return "the scheduler is not available";
        }
        boolean prefill = false;
        boolean decode = false;
        for (var e : workerSeen.entrySet()) {
            if (now - e.getValue() <= livenessMillis) {
                String role = e.getKey().substring(e.getKey().indexOf('|') + 1);
                prefill |= !role.equals("decode");
                decode |= !role.equals("prefill");
            }
        }
        if (!prefill || !decode) {
            return "no " + (!prefill ? "prefill" : "decode") + " worker is available";
        }
        return null;
    }

    public int inFlight() {
        return listeners.size();
    }

    @Override
    public void close() {
        closed = true;
        KafkaSupport.stop(threads, producer);
    }
}
