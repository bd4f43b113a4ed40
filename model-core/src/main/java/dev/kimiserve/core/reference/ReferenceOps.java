package dev.kimiserve.core.reference;

import dev.kimiserve.core.tensor.Tensor;

/**
 * Scalar reference math in double precision, written to read like the spec (docs/kimi-linear-spec.md). No
 * parallelism, no tricks: these are the oracles the fast kernels are tested against. Matrices are PyTorch
 * {@code [out, in]} weights; vectors are double[].
 */
public final class ReferenceOps {
    private ReferenceOps() {
    }

    /** y = W x for W [out, in]. */
    public static double[] matvec(Tensor w, double[] x) {
        int out = (int) w.dim(0);
        int in = (int) w.dim(1);
        if (x.length != in) {
            throw new IllegalArgumentException(w.name() + ": input of " + x.length + " for " + in + " columns");
        }
        double[] y = new double[out];
        for (int o = 0; o < out; o++) {
            double acc = 0;
            long base = (long) o * in;
            for (int i = 0; i < in; i++) {
                acc += (double) w.getFloat(base + i) * x[i];
            }
            y[o] = acc;
        }
        return y;
    }

    /** RMSNorm: w * x / sqrt(mean(x^2) + eps) (spec section 2; weights multiply directly, no "1 + w"). */
    public static double[] rmsNorm(double[] x, float[] w, double eps) {
        double ms = 0;
        for (double v : x) {
            ms += v * v;
        }
        double inv = 1.0 / Math.sqrt(ms / x.length + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = w[i] * (x[i] * inv);
        }
        return y;
    }

    public static double sigmoid(double z) {
        return 1.0 / (1.0 + Math.exp(-z));
    }

    public static double silu(double z) {
        return z * sigmoid(z);
    }

    /** PyTorch softplus with threshold 20: z for z > 20, else log(1 + e^z). */
    public static double softplus(double z) {
        return z > 20 ? z : Math.log1p(Math.exp(z));
    }

    /** x / sqrt(sum(x^2) + eps), eps inside the root (fla l2norm, eps 1e-6). */
    public static double[] l2Normalize(double[] x, double eps) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double inv = 1.0 / Math.sqrt(ss + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] * inv;
        }
        return y;
    }

    /** SwiGLU MLP: down(silu(gate x) * up x). */
    public static double[] swiglu(Tensor gate, Tensor up, Tensor down, double[] x) {
        double[] g = matvec(gate, x);
        double[] u = matvec(up, x);
        double[] h = new double[g.length];
        for (int i = 0; i < h.length; i++) {
            h[i] = silu(g[i]) * u[i];
        }
        return matvec(down, h);
    }

    /**
     * One KDA recurrence step for one head (spec section 3.1 item 7), state S [K][V] updated in place:
     * S = Diag(exp g) S; S += beta k (v - S^T k)^T; o = S^T q.
     *
     * @param q already L2-normalised and scaled by 1/sqrt(K)
     * @param k already L2-normalised
     * @param g log decay per key channel (<= 0)
     * @return o [V]
     */
    public static double[] kdaStep(double[][] s, double[] q, double[] k, double[] v, double[] g, double beta) {
        int kd = k.length;
        int vd = v.length;
        for (int i = 0; i < kd; i++) {
            double a = Math.exp(g[i]);
            for (int j = 0; j < vd; j++) {
                s[i][j] *= a;
            }
        }
        double[] e = new double[vd];
        for (int j = 0; j < vd; j++) {
            double p = 0;
            for (int i = 0; i < kd; i++) {
                p += s[i][j] * k[i];
            }
            e[j] = beta * (v[j] - p);
        }
        for (int i = 0; i < kd; i++) {
            for (int j = 0; j < vd; j++) {
                s[i][j] += k[i] * e[j];
            }
        }
        double[] o = new double[vd];
        for (int j = 0; j < vd; j++) {
            double acc = 0;
            for (int i = 0; i < kd; i++) {
                acc += s[i][j] * q[i];
            }
            o[j] = acc;
        }
        return o;
    }

    /** Softmax attention of one query over keys/values: sum_s softmax(scale * q.k_s) v_s. */
    public static double[] attend(double[] q, double[][] keys, double[][] values, double scale) {
        int n = keys.length;
        double[] scores = new double[n];
        double max = Double.NEGATIVE_INFINITY;
        for (int s = 0; s < n; s++) {
            double dot = 0;
            for (int i = 0; i < q.length; i++) {
                dot += q[i] * keys[s][i];
            }
            scores[s] = dot * scale;
            max = Math.max(max, scores[s]);
        }
        double sum = 0;
        for (int s = 0; s < n; s++) {
            scores[s] = Math.exp(scores[s] - max);
            sum += scores[s];
        }
        double[] o = new double[values[0].length];
        for (int s = 0; s < n; s++) {
            double p = scores[s] / sum;
            for (int j = 0; j < o.length; j++) {
                o[j] += p * values[s][j];
            }
        }
        return o;
    }
}
