package dev.kimiserve.core.cpu;

/** fp32 elementwise functions with PyTorch semantics and overflow-safe forms. */
public final class Functions {
    private Functions() {
    }

    public static float sigmoid(float z) {
        // 1 / (1 + e^-z) computed from e^-|z| so that it never overflows
        float e = (float) Math.exp(-Math.abs(z));
        return z >= 0 ? 1f / (1f + e) : e / (1f + e);
    }

    public static float silu(float z) {
        return z * sigmoid(z);
    }

    /** PyTorch softplus (beta 1, threshold 20). */
    public static float softplus(float z) {
        return z > 20f ? z : (float) Math.log1p(Math.exp(z));
    }

    /** out[r] = w * x[r] / sqrt(mean(x[r]^2) + eps) for each row of [rows, dim]; out may be x. */
    public static void rmsNorm(float[] x, int rows, int dim, float[] w, float eps, float[] out) {
        for (int r = 0; r < rows; r++) {
            int base = r * dim;
            double ss = 0;
            for (int i = 0; i < dim; i++) {
                ss += x[base + i] * x[base + i];
            }
            float inv = (float) (1.0 / Math.sqrt(ss / dim + eps));
            for (int i = 0; i < dim; i++) {
                out[base + i] = w[i] * (x[base + i] * inv);
            }
        }
    }

    /** x[off .. off+n) /= sqrt(sum(x^2) + eps), then *= scale. */
    public static void l2NormalizeInPlace(float[] x, int off, int n, float eps, float scale) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            ss += x[off + i] * x[off + i];
        }
        float inv = (float) (scale / Math.sqrt(ss + eps));
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
    }

    /** acc[i] += x[i] for i in [0, n). */
    public static void addInPlace(float[] acc, float[] x, int n) {
        for (int i = 0; i < n; i++) {
            acc[i] += x[i];
        }
    }
}
