package dev.kimiserve.core.weights;

import dev.kimiserve.core.tensor.Tensor;

/**
 * Weights of one KDA mixer. C = numHeads * headDim channels, D = hidden size, R = headDim (gate rank).
 *
 * @param qProj  [C, D]
 * @param kProj  [C, D]
 * @param vProj  [C, D]
 * @param qConv  [C][convKernel] depthwise taps, tap convKernel-1 multiplies the current token
 * @param kConv  [C][convKernel]
 * @param vConv  [C][convKernel]
 * @param fA     [R, D] forget-gate down
 * @param fB     [C, R] forget-gate up
 * @param aLog   [numHeads] per-head log decay rate
 * @param dtBias [C] per-channel gate bias
 * @param bProj  [numHeads, D] beta logits
 * @param gA     [R, D] output-gate down
 * @param gB     [C, R] output-gate up
 * @param oNorm  [headDim] gated RMSNorm weight shared by all heads
 * @param oProj  [D, C]
 */
public record KdaWeights(Tensor qProj, Tensor kProj, Tensor vProj, float[] qConv, float[] kConv, float[] vConv,
                         Tensor fA, Tensor fB, float[] aLog, float[] dtBias, Tensor bProj, Tensor gA, Tensor gB,
                         float[] oNorm, Tensor oProj) {
}
