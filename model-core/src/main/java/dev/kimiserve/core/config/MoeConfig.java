package dev.kimiserve.core.config;

/**
 * Routed-expert settings (spec section 6.2): sigmoid router in fp32, correction bias used for selection,
 * group-limited top-k, optional renormalisation, routed scaling, shared experts.
 *
 * @param weightsUseCorrectionBias true reproduces the released remote code, whose routing weights come from
 *                                 sigmoid + bias (an in-place aliasing side effect); false (default) is the
 *                                 vLLM / SGLang / transformers convention of unbiased weights
 */
public record MoeConfig(int numExperts, int expertsPerToken, int intermediateSize, int numSharedExperts,
                        int numExpertGroups, int topkGroups, boolean renormalize, float routedScalingFactor,
                        boolean weightsUseCorrectionBias) {
    public MoeConfig {
        if (numExperts <= 0 || expertsPerToken <= 0 || expertsPerToken > numExperts || intermediateSize <= 0 || numSharedExperts < 0) {
            throw new IllegalArgumentException("invalid MoE shapes: experts=" + numExperts + " top-k=" + expertsPerToken
                    + " width=" + intermediateSize + " shared=" + numSharedExperts);
        }
        if (numExpertGroups <= 0 || numExperts % numExpertGroups != 0 || topkGroups <= 0 || topkGroups > numExpertGroups
                || expertsPerToken > topkGroups * (numExperts / numExpertGroups)) {
            throw new IllegalArgumentException("invalid expert groups: experts=" + numExperts + " groups=" + numExpertGroups
                    + " topk_group=" + topkGroups + " top-k=" + expertsPerToken);
        }
    }

    public int expertsPerGroup() {
        return numExperts / numExpertGroups;
    }

    /** Width of the shared expert MLP (num_shared_experts * moe_intermediate_size). */
    public int sharedIntermediateSize() {
        return numSharedExperts * intermediateSize;
    }

    public MoeConfig withWeightsUseCorrectionBias(boolean biased) {
        return new MoeConfig(numExperts, expertsPerToken, intermediateSize, numSharedExperts, numExpertGroups, topkGroups,
                renormalize, routedScalingFactor, biased);
    }
}
