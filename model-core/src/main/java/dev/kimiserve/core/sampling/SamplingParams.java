package dev.kimiserve.core.sampling;

/**
 * How to pick the next token, with vLLM's semantics: penalties first, then temperature (0 = greedy), then top-k,
 * top-p and min-p filtering, then a draw from a seeded generator.
 *
 * @param temperature       0 for greedy, else the softmax temperature (> 0)
 * @param topK              keep the k most likely tokens; 0 or -1 keeps all
 * @param topP              keep the smallest set whose probability reaches p, in (0, 1]
 * @param minP              drop tokens less likely than minP * (probability of the best token), in [0, 1]
 * @param repetitionPenalty > 0; 1 = off. Logits of tokens seen in prompt or output are divided (if > 0) or multiplied by it
 * @param presencePenalty   in [-2, 2]; subtracted once from the logit of every token already generated
 * @param frequencyPenalty  in [-2, 2]; subtracted per occurrence of a generated token
 * @param seed              fixes the random draws; null draws a fresh seed
 */
public record SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
                             double presencePenalty, double frequencyPenalty, Long seed) {
    public static final SamplingParams GREEDY = new SamplingParams(0, 0, 1, 0, 1, 0, 0, null);

    public SamplingParams {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        }
        if (topK < -1) {
            throw new IllegalArgumentException("top_k must be -1, 0 (all) or positive, got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new IllegalArgumentException("min_p must be in [0, 1], got " + minP);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition_penalty must be > 0, got " + repetitionPenalty);
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
            throw new IllegalArgumentException("presence_penalty must be in [-2, 2], got " + presencePenalty);
        }
        if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new IllegalArgumentException("frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
        }
    }

    public boolean greedy() {
        return temperature < 1e-5;
    }

    public boolean hasPenalties() {
        return repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0;
    }
}
