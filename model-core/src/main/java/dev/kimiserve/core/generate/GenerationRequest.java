package dev.kimiserve.core.generate;

import dev.kimiserve.core.sampling.SamplingParams;
import java.util.Set;

/**
 * One generation: prompt ids, how to sample, when to stop.
 *
 * @param stopTokenIds ids that end generation (in addition to the model's eos ids unless ignoreEos); the stop token
 *                     is reported in the output, as transformers does
 */
public record GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, Set<Integer> stopTokenIds, boolean ignoreEos) {
    public GenerationRequest {
        prompt = prompt.clone();
        stopTokenIds = Set.copyOf(stopTokenIds);
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt is empty");
        }
        if (maxTokens <= 0) {
            throw new IllegalArgumentException("max_tokens must be > 0, got " + maxTokens);
        }
    }

    @Override
    public int[] prompt() {
        return prompt.clone();
    }
}
