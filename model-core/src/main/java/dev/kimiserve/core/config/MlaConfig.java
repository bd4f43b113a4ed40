package dev.kimiserve.core.config;

/**
 * Shapes of the MLA layers (NoPE: the rope slice exists but is never rotated).
 *
 * @param qLoraRank 0 when queries are projected directly by q_proj (the 48B model), else the rank of q_a/q_b
 * @param kvALayernormEps epsilon of kv_a_layernorm: 1e-6 in transformers and the released remote code
 */
public record MlaConfig(int numHeads, int qkNopeHeadDim, int qkRopeHeadDim, int vHeadDim, int kvLoraRank, int qLoraRank,
                        float kvALayernormEps) {
    public MlaConfig {
        if (numHeads <= 0 || qkNopeHeadDim <= 0 || qkRopeHeadDim < 0 || vHeadDim <= 0 || kvLoraRank <= 0 || qLoraRank < 0) {
            throw new IllegalArgumentException("invalid MLA shapes: " + numHeads + "," + qkNopeHeadDim + "," + qkRopeHeadDim + ","
                    + vHeadDim + "," + kvLoraRank + "," + qLoraRank);
        }
    }

    public int qkHeadDim() {
        return qkNopeHeadDim + qkRopeHeadDim;
    }

    /** Values cached per token per MLA layer: [c (kvLoraRank) | k_pe (qkRopeHeadDim)]. */
    public int latentSize() {
        return kvLoraRank + qkRopeHeadDim;
    }

    /** Softmax scale 1/sqrt(qk_nope + qk_rope). */
    public double softmaxScale() {
        return 1.0 / Math.sqrt(qkHeadDim());
    }
}
