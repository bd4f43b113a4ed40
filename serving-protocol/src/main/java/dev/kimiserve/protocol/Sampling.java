package dev.kimiserve.protocol;

/**
 * Sampling settings of one request, as the engine applies them (vLLM semantics). The seed is always set by the
 * platform (from the request, or drawn once when the request arrives) so that a sequence re-run after a worker failure
 * reproduces exactly the tokens already sent.
 */
public record Sampling(double temperature, double topP, int topK, double minP, double repetitionPenalty,
                       double presencePenalty, double frequencyPenalty, long seed) {
}
