package dev.kimiserve.protocol;

import java.util.List;

/**
 * One generated token of one choice (or the end of a choice, or an error), on {@link Topics#TOKENS} keyed by request id.
 * Indices start at 0 per choice; a receiver drops any index it has already seen, which makes re-runs after a worker
 * failure invisible to clients.
 *
 * @param text          the text this token completes (stop-safe: text that might start a stop string is held back
 *                      until it cannot); empty for models without a tokenizer
 * @param finishReason  set on the last event of a choice: "stop", "length" or "abort"
 * @param promptTokens  set on the last event: prompt length, for usage
 * @param error         set when the request failed; the event then carries no token
 */
public record TokenEvent(int v, String requestId, int choice, int index, Integer tokenId, String text, Double logprob,
                         List<TopLogprob> topLogprobs, String finishReason, Integer promptTokens, ErrorInfo error,
                         Long emittedAtNanos) implements Codec.Versioned {
    public TokenEvent {
        if (v == 0) {
            v = Codec.VERSION;
        }
    }

    public boolean isFinal() {
        return finishReason != null || error != null;
    }

    /** An alternative token at a position. */
    public record TopLogprob(int tokenId, String token, double logprob) {
    }
}
