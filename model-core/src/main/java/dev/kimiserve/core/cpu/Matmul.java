package dev.kimiserve.core.cpu;

import dev.kimiserve.core.tensor.Tensor;

/** y[rows, out] = x[rows, in] * W^T for a weight W [out, in] read in place from the checkpoint (bf16/f16/f32). */
public final class Matmul {
    private Matmul() {
    }

    public static void matmul(float[] x, int rows, Tensor w, float[] y) {
        int out = (int) w.dim(0);
        int in = (int) w.dim(1);
        float[] row = new float[in];
        for (int o = 0; o < out; o++) {
            long base = (long) o * in;
            for (int i = 0; i < in; i++) {
                row[i] = w.getFloat(base + i);
            }
            for (int r = 0; r < rows; r++) {
                int xb = r * in;
                float acc = 0;
                for (int i = 0; i < in; i++) {
                    acc += x[xb + i] * row[i];
                }
                y[r * out + o] = acc;
            }
        }
    }
}
