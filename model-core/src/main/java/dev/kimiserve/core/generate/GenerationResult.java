package dev.kimiserve.core.generate;

/**
 * What a generation produced, with timings.
 *
 * @param prefillNanos time to the first token's logits
 * @param decodeNanos  time of all decode steps after that
 */
public record GenerationResult(int[] tokens, FinishReason finishReason, int promptTokens, long prefillNanos, long decodeNanos) {
    public GenerationResult {
        tokens = tokens.clone();
    }

    @Override
    public int[] tokens() {
        return tokens.clone();
    }

    /** Decode steps per second (tokens after the first, which comes from prefill). */
    public double decodeTokensPerSecond() {
        return tokens.length <= 1 || decodeNanos == 0 ? 0 : (tokens.length - 1) / (decodeNanos / 1e9);
    }

    public double prefillTokensPerSecond() {
        return prefillNanos == 0 ? 0 : promptTokens / (prefillNanos / 1e9);
    }
}
