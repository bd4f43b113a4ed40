package dev.kimiserve.protocol;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * A request on {@link Topics#REQUESTS} (key = id). Kafka-native clients send {@code id}, {@code endpoint} and the OpenAI
 * {@code body}; the gateway also sends the request already validated and tokenized ({@code spec}) and where to stream
 * the tokens ({@code replyPartition} of {@link Topics#TOKENS}). Without a reply partition the platform answers on
 * {@link Topics#RESPONSES}.
 *
 * @param endpoint "/v1/chat/completions" or "/v1/completions"
 * @param replyPartition partition of kimi.tokens the answering gateway reads, or null for a Kafka-native request
 */
public record RequestEnvelope(int v, String id, String endpoint, JsonNode body, GenerationSpec spec, Integer replyPartition,
                              Long receivedAtMillis) implements Codec.Versioned {
    public static final String CHAT = "/v1/chat/completions";
    public static final String COMPLETIONS = "/v1/completions";

    public RequestEnvelope {
        if (v == 0) {
            v = Codec.VERSION;
        }
    }
}
