package dev.kimiserve.protocol;

/** Kafka topic names of the platform (see docs/design.md, request flow). */
public final class Topics {
    private Topics() {
    }

    /** Requests in: HTTP gateway and Kafka-native clients produce here, keyed by request id. */
    public static final String REQUESTS = "kimi.requests";
    /** Complete responses for Kafka-native clients, keyed by request id. */
    public static final String RESPONSES = "kimi.responses";
    /** Prefill work for the prefill pool. */
    public static final String PREFILL = "kimi.prefill";
    /** Decode work (finished prefills) for the decode pool. */
    public static final String DECODE = "kimi.decode";
    /** Token events from the last pipeline stage back to gateways. */
    public static final String TOKENS = "kimi.tokens";
    /** Cancellations and deadlines. */
    public static final String CONTROL = "kimi.control";
}
