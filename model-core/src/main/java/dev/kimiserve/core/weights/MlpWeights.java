package dev.kimiserve.core.weights;

import dev.kimiserve.core.tensor.Tensor;

/**
 * A SwiGLU MLP: down(silu(gate x) * up x). I = intermediate width, D = hidden size.
 * Routed experts map w1 to gate, w3 to up and w2 to down.
 *
 * @param gate [I, D]
 * @param up   [I, D]
 * @param down [D, I]
 */
public record MlpWeights(Tensor gate, Tensor up, Tensor down) {
    public int intermediateSize() {
        return (int) gate.dim(0);
    }
}
