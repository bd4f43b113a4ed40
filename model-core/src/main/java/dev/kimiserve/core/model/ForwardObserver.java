package dev.kimiserve.core.model;

/**
 * Sees the hidden states of a forward pass, for tests and debugging (like transformers' output_hidden_states).
 * Arrays are row-major [rows, hidden] (only the first rows * dim values are meaningful; engines reuse larger
 * buffers) and only valid during the call.
 */
public interface ForwardObserver {
    ForwardObserver NONE = new ForwardObserver() {
    };

    /** {@code index} 0: the embeddings; {@code index} i + 1: the output of decoder layer i. */
    default void hidden(int index, float[] values, int rows, int dim) {
    }

    /** The output of the final norm, which the LM head reads. */
    default void finalNorm(float[] values, int rows, int dim) {
    }
}
