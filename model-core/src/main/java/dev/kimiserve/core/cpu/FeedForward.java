package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.model.Routing;
import dev.kimiserve.core.weights.MlpWeights;
import dev.kimiserve.core.weights.MoeWeights;

/** Dense SwiGLU and MoE feed-forward blocks (spec section 6), fp32. */
final class FeedForward {
    private FeedForward() {
    }

    /** out[rows, D] = down(silu(gate x) * up x). */
    static void swiglu(MlpWeights m, float[] x, int rows, float[] out) {
        int width = m.intermediateSize();
        float[] g = new float[rows * width];
        float[] u = new float[rows * width];
        Matmul.matmul(x, rows, m.gate(), g);
        Matmul.matmul(x, rows, m.up(), u);
        for (int i = 0; i < g.length; i++) {
            g[i] = Functions.silu(g[i]) * u[i];
        }
        Matmul.matmul(g, rows, m.down(), out);
    }

    /**
     * MoE: route every row, then run each expert once over all rows routed to it (its weights are read once per
     * call), add the weighted expert outputs and the shared expert.
     */
    static void moe(MoeConfig cfg, MoeWeights m, float[] x, int rows, int dim, float[] out) {
        int e = cfg.numExperts();
        int k = cfg.expertsPerToken();
        float[] logits = new float[rows * e];
        Matmul.matmul(x, rows, m.router(), logits);                     // router logits in fp32
        int[] chosen = new int[rows * k];
        double[] weights = new double[rows * k];
        int[] perExpert = new int[e];
        double[] rowLogits = new double[e];
        int[] ids = new int[k];
        double[] ws = new double[k];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < e; i++) {
                rowLogits[i] = logits[r * e + i];
            }
            Routing.route(cfg, rowLogits, m.correctionBias(), ids, ws);
            for (int s = 0; s < k; s++) {
                chosen[r * k + s] = ids[s];
                weights[r * k + s] = ws[s];
                perExpert[ids[s]]++;
            }
        }
        java.util.Arrays.fill(out, 0, rows * dim, 0f);
        for (int ex = 0; ex < e; ex++) {
            if (perExpert[ex] == 0) {
                continue;
            }
            int n = perExpert[ex];
            int[] rowOf = new int[n];
            float[] weightOf = new float[n];
            float[] xs = new float[n * dim];
            int j = 0;
            for (int r = 0; r < rows; r++) {
                for (int s = 0; s < k; s++) {
                    if (chosen[r * k + s] == ex) {
                        rowOf[j] = r;
                        weightOf[j] = (float) weights[r * k + s];
                        System.arraycopy(x, r * dim, xs, j * dim, dim);
                        j++;
                    }
                }
            }
            float[] ys = new float[n * dim];
            swiglu(m.experts().get(ex), xs, n, ys);
            for (int i = 0; i < n; i++) {
                int ob = rowOf[i] * dim;
                for (int d = 0; d < dim; d++) {
                    out[ob + d] += weightOf[i] * ys[i * dim + d];
                }
            }
        }
        if (m.shared() != null) {
            float[] shared = new float[rows * dim];
            swiglu(m.shared(), x, rows, shared);
            Functions.addInPlace(out, shared, rows * dim);
        }
    }
}
