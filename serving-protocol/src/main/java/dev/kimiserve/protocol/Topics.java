package dev.kimiserve.protocol;

/**
 * Kafka topics of the platform (see docs/design.md, request flow). Keys are request ids except on per-worker task
 * topics and heartbeats, which are keyed by worker id.
 */
public final class Topics {
    private Topics() {
    }

    /** Requests in: the HTTP gateway and Kafka-native clients produce {@link RequestEnvelope}s here, key = request id. */
    public static final String REQUESTS = "kimi.requests";
    /** Complete responses for Kafka-native clients (the OpenAI response body or error object), key = request id. */
    public static final String RESPONSES = "kimi.responses";
    /** Prefill work (reserved for pool-level queues; tasks go to per-worker topics, see {@link #workerTasks}). */
    public static final String PREFILL = "kimi.prefill";
    /** Decode work (reserved for pool-level queues; tasks go to per-worker topics, see {@link #workerTasks}). */
    public static final String DECODE = "kimi.decode";
    /** {@link TokenEvent}s from workers to whoever answers the request; partition = the answerer's reply partition. */
    public static final String TOKENS = "kimi.tokens";
    /** {@link ControlMessage}s: cancellations, heartbeats, worker -> scheduler progress. Read by every service. */
    public static final String CONTROL = "kimi.control";
    /** Partitions of {@link #TOKENS}: partition 0 answers Kafka-native requests, gateways use 1..N-1. */
    public static final int TOKEN_PARTITIONS = 16;

    /** The task topic of one worker (prefill and decode tasks addressed to it). */
    public static String workerTasks(String workerId) {
        return "kimi.work." + workerId;
    }
}
