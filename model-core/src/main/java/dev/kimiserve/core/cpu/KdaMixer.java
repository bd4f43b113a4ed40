package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.state.KdaState;
import dev.kimiserve.core.weights.KdaWeights;
import java.util.List;

/** The KDA token mixer over a ragged batch (spec section 3.1), fp32. */
final class KdaMixer {
    private final KdaConfig cfg;
    private final KdaWeights w;
    private final int layer;
    private final float normEps;

    KdaMixer(KdaConfig cfg, KdaWeights w, int layer, float normEps) {
        this.cfg = cfg;
        this.w = w;
        this.layer = layer;
        this.normEps = normEps;
    }

    /** x [rows, D] (normed block input) -> out [rows, D]. */
    void forward(float[] x, int rows, List<Segment> segments, float[] out) {
        int heads = cfg.numHeads();
        int hd = cfg.headDim();
        int c = cfg.projectionSize();
        float[] qPre = new float[rows * c];
        float[] kPre = new float[rows * c];
        float[] vPre = new float[rows * c];
        Matmul.matmul(x, rows, w.qProj(), qPre);                       // q_proj(x)
        Matmul.matmul(x, rows, w.kProj(), kPre);                       // k_proj(x)
        Matmul.matmul(x, rows, w.vProj(), vPre);                       // v_proj(x)
        float[] q = new float[rows * c];
        float[] k = new float[rows * c];
        float[] v = new float[rows * c];
        for (Segment seg : segments) {                                 // causal_conv1d + silu, continuing the windows
            KdaState st = seg.state().kda(layer);
            ShortConv.forward(qPre, seg.start(), seg.count(), c, w.qConv(), st.convQ, st.convWidth(), q);
            ShortConv.forward(kPre, seg.start(), seg.count(), c, w.kConv(), st.convK, st.convWidth(), k);
            ShortConv.forward(vPre, seg.start(), seg.count(), c, w.vConv(), st.convV, st.convWidth(), v);
        }
        float qScale = (float) (1.0 / Math.sqrt(hd));
        for (int r = 0; r < rows; r++) {                               // l2norm(q) / sqrt(K), l2norm(k)
            for (int h = 0; h < heads; h++) {
                Functions.l2NormalizeInPlace(q, r * c + h * hd, hd, 1e-6f, qScale);
                Functions.l2NormalizeInPlace(k, r * c + h * hd, hd, 1e-6f, 1f);
            }
        }
        float[] gateLow = new float[rows * hd];
        float[] g = new float[rows * c];
        Matmul.matmul(x, rows, w.fA(), gateLow);                       // f_b_proj(f_a_proj(x))
        Matmul.matmul(gateLow, rows, w.fB(), g);
        for (int r = 0; r < rows; r++) {                               // g = -exp(A_log) * softplus(a + dt_bias)
            for (int h = 0; h < heads; h++) {
                float decayRate = (float) -Math.exp(w.aLog()[h]);
                for (int i = 0; i < hd; i++) {
                    int idx = r * c + h * hd + i;
                    g[idx] = decayRate * Functions.softplus(g[idx] + w.dtBias()[h * hd + i]);
                }
            }
        }
        float[] beta = new float[rows * heads];
        Matmul.matmul(x, rows, w.bProj(), beta);                       // beta = sigmoid(b_proj(x))
        for (int i = 0; i < beta.length; i++) {
            beta[i] = Functions.sigmoid(beta[i]);
        }
        float[] o = new float[rows * c];
        for (Segment seg : segments) {                                 // the delta rule: recurrent for decode, chunked for prefill
            float[] s = seg.state().kda(layer).recurrent;
            if (seg.decode()) {
                KdaCore.recurrent(q, k, v, g, beta, seg.start(), seg.count(), heads, hd, hd, s, o);
            } else {
                KdaCore.chunked(q, k, v, g, beta, seg.start(), seg.count(), heads, hd, hd, s, o);
            }
        }
        float[] outGate = new float[rows * c];
        Matmul.matmul(x, rows, w.gA(), gateLow);                       // g_b_proj(g_a_proj(x))
        Matmul.matmul(gateLow, rows, w.gB(), outGate);
        for (int r = 0; r < rows; r++) {                               // o_norm(o, gate): rmsnorm per head * sigmoid(gate)
            for (int h = 0; h < heads; h++) {
                int base = r * c + h * hd;
                double ss = 0;
                for (int i = 0; i < hd; i++) {
                    ss += o[base + i] * o[base + i];
                }
                float inv = (float) (1.0 / Math.sqrt(ss / hd + normEps));
                for (int i = 0; i < hd; i++) {
                    o[base + i] = w.oNorm()[i] * (o[base + i] * inv) * Functions.sigmoid(outGate[base + i]);
                }
            }
        }
        Matmul.matmul(o, rows, w.oProj(), out);                        // o_proj
    }
}
