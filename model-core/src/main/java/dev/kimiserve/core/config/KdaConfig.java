package dev.kimiserve.core.config;

/**
 * Shapes of the KDA layers: {@code numHeads} heads of key and value width {@code headDim}, depthwise causal
 * convolutions of width {@code convKernel} on q, k and v.
 */
public record KdaConfig(int numHeads, int headDim, int convKernel) {
    public KdaConfig {
        if (numHeads <= 0 || headDim <= 0 || convKernel <= 0) {
            throw new IllegalArgumentException("KDA shapes must be positive: heads=" + numHeads + " headDim=" + headDim + " conv=" + convKernel);
        }
    }

    /** Channels of each of q, k, v: numHeads * headDim. */
    public int projectionSize() {
        return numHeads * headDim;
    }
}
