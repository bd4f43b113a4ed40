package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.weights.MlaWeights;
import java.util.List;

/**
 * The MLA token mixer over a ragged batch (spec section 5), fp32: latents [c | k_pe] are appended to each sequence's
 * cache; prefill segments attend in the expanded form (k_nope, v materialised per cached token), decode segments in the
 * weight-absorbed form (queries folded into the latent space, MQA over [c | k_pe]).
 */
final class MlaMixer {
    private final MlaConfig cfg;
    private final MlaWeights w;
    private final int layer;

    MlaMixer(MlaConfig cfg, MlaWeights w, int layer) {
        this.cfg = cfg;
        this.w = w;
        this.layer = layer;
    }

    void forward(float[] x, int rows, List<Segment> segments, float[] out) {
        int heads = cfg.numHeads();
        int qk = cfg.qkHeadDim();
        int lora = cfg.kvLoraRank();
        int latent = cfg.latentSize();
        float[] q = new float[rows * heads * qk];
        if (w.qProj() != null) {
            Matmul.matmul(x, rows, w.qProj(), q);                      // q_proj(x)
        } else {
            int qr = cfg.qLoraRank();
            float[] qa = new float[rows * qr];
            Matmul.matmul(x, rows, w.qA(), qa);                        // q_b_proj(q_a_layernorm(q_a_proj(x)))
            Functions.rmsNorm(qa, rows, qr, w.qANorm(), 1e-6f, qa);
            Matmul.matmul(qa, rows, w.qB(), q);
        }
        float[] kva = new float[rows * latent];
        Matmul.matmul(x, rows, w.kvA(), kva);                          // kv_a_proj_with_mqa(x) = [c_raw | k_pe]
        for (int r = 0; r < rows; r++) {                               // c = kv_a_layernorm(c_raw); k_pe untouched (NoPE)
            normalizeLatent(kva, r * latent, lora);
        }
        float[] o = new float[rows * heads * cfg.vHeadDim()];
        for (Segment seg : segments) {
            MlaCache cache = seg.state().mla(layer);
            int past = cache.length();
            for (int t = 0; t < seg.count(); t++) {
                cache.append(kva, (seg.start() + t) * latent);
            }
            if (seg.decode()) {
                absorbedAttention(q, seg.start(), cache, o);
            } else {
                expandedAttention(q, seg.start(), seg.count(), past, cache, o);
            }
        }
        Matmul.matmul(o, rows, w.oProj(), out);                        // o_proj
    }

    private void normalizeLatent(float[] kva, int off, int lora) {
        double ss = 0;
        for (int i = 0; i < lora; i++) {
            ss += kva[off + i] * kva[off + i];
        }
        float inv = (float) (1.0 / Math.sqrt(ss / lora + cfg.kvALayernormEps()));
        for (int i = 0; i < lora; i++) {
            kva[off + i] = w.kvANorm()[i] * (kva[off + i] * inv);
        }
    }

    /** Causal attention of rows [row0, row0+count) at positions past.. over the whole cache, keys/values expanded. */
    private void expandedAttention(float[] q, int row0, int count, int past, MlaCache cache, float[] o) {
        int heads = cfg.numHeads();
        int nope = cfg.qkNopeHeadDim();
        int rope = cfg.qkRopeHeadDim();
        int qk = cfg.qkHeadDim();
        int vd = cfg.vHeadDim();
        int lora = cfg.kvLoraRank();
        int total = cache.length();
        float[] c = new float[total * lora];
        for (int s = 0; s < total; s++) {
            float[] page = cache.page(s);
            System.arraycopy(page, cache.offsetInPage(s), c, s * lora, lora);
        }
        int kvw = heads * (nope + vd);
        float[] kv = new float[total * kvw];
        Matmul.matmul(c, total, w.kvB(), kv);                          // kv_b_proj(c) = per head [k_nope | v]
        float scale = (float) cfg.softmaxScale();
        float[] scores = new float[total];
        for (int t = 0; t < count; t++) {
            int visible = past + t + 1;
            for (int h = 0; h < heads; h++) {
                int qb = ((row0 + t) * heads + h) * qk;
                float max = Float.NEGATIVE_INFINITY;
                for (int s = 0; s < visible; s++) {
                    int kb = s * kvw + h * (nope + vd);
                    float dot = 0f;
                    for (int i = 0; i < nope; i++) {
                        dot += q[qb + i] * kv[kb + i];
                    }
                    float[] page = cache.page(s);
                    int pb = cache.offsetInPage(s) + lora;
                    for (int i = 0; i < rope; i++) {
                        dot += q[qb + nope + i] * page[pb + i];
                    }
                    scores[s] = dot * scale;
                    max = Math.max(max, scores[s]);
                }
                float sum = softmaxInPlace(scores, visible, max);
                int ob = ((row0 + t) * heads + h) * vd;
                for (int j = 0; j < vd; j++) {
                    float acc = 0f;
                    for (int s = 0; s < visible; s++) {
                        acc += scores[s] * kv[s * kvw + h * (nope + vd) + nope + j];
                    }
                    o[ob + j] = acc / sum;
                }
            }
        }
    }

    /** One query row against the whole cache with W_kv_b folded into the query (spec section 5.3). */
    private void absorbedAttention(float[] q, int row, MlaCache cache, float[] o) {
        int heads = cfg.numHeads();
        int nope = cfg.qkNopeHeadDim();
        int rope = cfg.qkRopeHeadDim();
        int qk = cfg.qkHeadDim();
        int vd = cfg.vHeadDim();
        int lora = cfg.kvLoraRank();
        int total = cache.length();
        float scale = (float) cfg.softmaxScale();
        float[] qAbs = new float[lora];
        float[] z = new float[lora];
        float[] scores = new float[total];
        for (int h = 0; h < heads; h++) {
            int qb = (row * heads + h) * qk;
            int wk = h * (nope + vd);                                  // rows of kv_b_proj giving k_nope of head h
            java.util.Arrays.fill(qAbs, 0f);
            for (int i = 0; i < nope; i++) {                           // q~ = Wk_h^T q_nope
                float qi = q[qb + i];
                long base = (long) (wk + i) * lora;
                for (int l = 0; l < lora; l++) {
                    qAbs[l] += qi * w.kvB().getFloat(base + l);
                }
            }
            float max = Float.NEGATIVE_INFINITY;
            for (int s = 0; s < total; s++) {                          // score = (q~ . c_s + q_pe . k_pe_s) * scale
                float[] page = cache.page(s);
                int pb = cache.offsetInPage(s);
                float dot = 0f;
                for (int l = 0; l < lora; l++) {
                    dot += qAbs[l] * page[pb + l];
                }
                for (int i = 0; i < rope; i++) {
                    dot += q[qb + nope + i] * page[pb + lora + i];
                }
                scores[s] = dot * scale;
                max = Math.max(max, scores[s]);
            }
            float sum = softmaxInPlace(scores, total, max);
            java.util.Arrays.fill(z, 0f);
            for (int s = 0; s < total; s++) {                          // z = sum_s p_s c_s
                float p = scores[s] / sum;
                float[] page = cache.page(s);
                int pb = cache.offsetInPage(s);
                for (int l = 0; l < lora; l++) {
                    z[l] += p * page[pb + l];
                }
            }
            int ob = (row * heads + h) * vd;
            for (int j = 0; j < vd; j++) {                             // o_h = Wv_h z
                long base = (long) (wk + nope + j) * lora;
                float acc = 0f;
                for (int l = 0; l < lora; l++) {
                    acc += w.kvB().getFloat(base + l) * z[l];
                }
                o[ob + j] = acc;
            }
        }
    }

    /** scores[0..n) = exp(scores - max); returns their sum. */
    private static float softmaxInPlace(float[] scores, int n, float max) {
        float sum = 0f;
        for (int s = 0; s < n; s++) {
            scores[s] = (float) Math.exp(scores[s] - max);
            sum += scores[s];
        }
        return sum;
    }
}
