package dev.kimiserve.core.reference;

import static dev.kimiserve.core.reference.ReferenceOps.*;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.ForwardObserver;
import dev.kimiserve.core.model.Inputs;
import dev.kimiserve.core.model.Routing;
import dev.kimiserve.core.state.KdaState;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.weights.KdaWeights;
import dev.kimiserve.core.weights.LayerWeights;
import dev.kimiserve.core.weights.MlaWeights;
import dev.kimiserve.core.weights.MoeWeights;
import dev.kimiserve.core.weights.MlpWeights;
import dev.kimiserve.core.weights.ModelWeights;

/**
 * The reference backend: the whole model token by token in double precision, following the spec line by line
 * (KDA by its recurrence, MLA by expanding every cached latent, MoE per token). Slow on purpose; tests hold the
 * fast backends against it and it is selectable for debugging. State is stored in the common fp32 layout.
 */
public final class ReferenceEngine implements Engine {
    private final ModelWeights w;
    private final KimiLinearConfig cfg;

    public ReferenceEngine(ModelWeights weights) {
        this.w = weights;
        this.cfg = weights.config();
    }

    @Override
    public KimiLinearConfig config() {
        return cfg;
    }

    @Override
    public String backend() {
        return "reference";
    }

    @Override
    public float[] prefill(int[] tokens, SequenceState state, Logits mode, ForwardObserver observer) {
        Inputs.checkTokens(cfg, tokens);
        Inputs.checkContext(cfg, state, tokens.length);
        int d = cfg.hiddenSize();
        int v = cfg.vocabSize();
        int t = tokens.length;
        float[][] hidden = new float[cfg.numLayers() + 1][t * d];
        float[] normed = new float[t * d];
        float[] logits = new float[(mode == Logits.ALL ? t : 1) * v];
        for (int i = 0; i < t; i++) {
            double[][] perLayer = new double[cfg.numLayers() + 1][];
            double[] y = step(tokens[i], state, perLayer);
            for (int l = 0; l < perLayer.length; l++) {
                copy(perLayer[l], hidden[l], i * d);
            }
            copy(y, normed, i * d);
            if (mode == Logits.ALL || i == t - 1) {
                copy(matvec(w.lmHead(), y), logits, mode == Logits.ALL ? i * v : 0);
            }
        }
        for (int l = 0; l < hidden.length; l++) {
            observer.hidden(l, hidden[l], t, d);
        }
        observer.finalNorm(normed, t, d);
        return logits;
    }

    @Override
    public void decode(int[] tokens, SequenceState[] states, float[] logits) {
        Inputs.checkDecode(cfg, tokens, states, logits);
        for (int b = 0; b < tokens.length; b++) {
            double[] y = step(tokens[b], states[b], new double[cfg.numLayers() + 1][]);
            copy(matvec(w.lmHead(), y), logits, b * cfg.vocabSize());
        }
    }

    /** One token through every layer (spec section 2); returns the final-norm output and fills per-layer hiddens. */
    private double[] step(int token, SequenceState state, double[][] perLayer) {
        int d = cfg.hiddenSize();
        double[] h = new double[d];
        for (int i = 0; i < d; i++) {
            h[i] = w.embed().getFloat((long) token * d + i);
        }
        perLayer[0] = h.clone();
        for (int l = 0; l < cfg.numLayers(); l++) {
            LayerWeights lw = w.layer(l);
            double[] a = rmsNorm(h, lw.inputNorm(), cfg.rmsNormEps());
            double[] mixed = lw.kda() != null ? kda(lw.kda(), a, state.kda(l)) : mla(lw.mla(), a, state.mla(l));
            add(h, mixed);
            double[] f = rmsNorm(h, lw.postAttnNorm(), cfg.rmsNormEps());
            add(h, lw.dense() != null ? swiglu(lw.dense(), f) : moe(lw.moe(), f));
            perLayer[l + 1] = h.clone();
        }
        state.advance(1);
        return rmsNorm(h, w.finalNorm(), cfg.rmsNormEps());
    }

    /** KDA for one token (spec section 3.1, items 1-10). */
    private double[] kda(KdaWeights kw, double[] x, KdaState st) {
        KdaConfig k = cfg.kda();
        int heads = k.numHeads();
        int hd = k.headDim();
        double[] q = shortConvSilu(matvec(kw.qProj(), x), kw.qConv(), st.convQ, st.convWidth());
        double[] kk = shortConvSilu(matvec(kw.kProj(), x), kw.kConv(), st.convK, st.convWidth());
        double[] vv = shortConvSilu(matvec(kw.vProj(), x), kw.vConv(), st.convV, st.convWidth());
        double[] gateIn = matvec(kw.fB(), matvec(kw.fA(), x));
        double[] betaLogits = matvec(kw.bProj(), x);
        double[] outGate = matvec(kw.gB(), matvec(kw.gA(), x));
        double[] o = new double[heads * hd];
        for (int h = 0; h < heads; h++) {
            double[] qh = l2Normalize(slice(q, h * hd, hd), 1e-6);
            for (int i = 0; i < hd; i++) {
                qh[i] /= Math.sqrt(hd);
            }
            double[] kh = l2Normalize(slice(kk, h * hd, hd), 1e-6);
            double[] vh = slice(vv, h * hd, hd);
            double[] g = new double[hd];
            for (int i = 0; i < hd; i++) {
                g[i] = -Math.exp(kw.aLog()[h]) * softplus(gateIn[h * hd + i] + kw.dtBias()[h * hd + i]);
            }
            double beta = sigmoid(betaLogits[h]);
            double[][] s = loadState(st.recurrent, h, hd, hd);
            double[] oh = kdaStep(s, qh, kh, vh, g, beta);
            storeState(s, st.recurrent, h);
            // per-head gated RMSNorm: o_norm.weight * rmsnorm(o_h) * sigmoid(gate)
            double[] normed = rmsNorm(oh, kw.oNorm(), cfg.rmsNormEps());
            for (int i = 0; i < hd; i++) {
                o[h * hd + i] = normed[i] * sigmoid(outGate[h * hd + i]);
            }
        }
        return matvec(kw.oProj(), o);
    }

    /** Depthwise causal conv of width window+1 over [history | x], then SiLU; shifts x into the history. */
    static double[] shortConvSilu(double[] x, float[] taps, float[] history, int window) {
        int channels = x.length;
        int kernel = window + 1;
        double[] out = new double[channels];
        for (int c = 0; c < channels; c++) {
            double acc = taps[c * kernel + window] * x[c];
            for (int j = 0; j < window; j++) {
                acc += taps[c * kernel + j] * (double) history[c * window + j];
            }
            out[c] = silu(acc);
            for (int j = 0; j + 1 < window; j++) {
                history[c * window + j] = history[c * window + j + 1];
            }
            if (window > 0) {
                history[c * window + window - 1] = (float) x[c];
            }
        }
        return out;
    }

    /** MLA for one token (spec section 5.1), attending over every cached latent expanded per head. */
    private double[] mla(MlaWeights mw, double[] x, MlaCache cache) {
        MlaConfig m = cfg.mla();
        int heads = m.numHeads();
        int nope = m.qkNopeHeadDim();
        int rope = m.qkRopeHeadDim();
        int qk = m.qkHeadDim();
        int vd = m.vHeadDim();
        int lora = m.kvLoraRank();
        double[] q = mw.qProj() != null ? matvec(mw.qProj(), x)
                : matvec(mw.qB(), rmsNorm(matvec(mw.qA(), x), mw.qANorm(), 1e-6));
        double[] kva = matvec(mw.kvA(), x);
        double[] c = rmsNorm(slice(kva, 0, lora), mw.kvANorm(), m.kvALayernormEps());
        float[] latent = new float[m.latentSize()];
        for (int i = 0; i < lora; i++) {
            latent[i] = (float) c[i];
        }
        for (int i = 0; i < rope; i++) {
            latent[lora + i] = (float) kva[lora + i];
        }
        cache.append(latent, 0);
        int n = cache.length();
        double[][][] keys = new double[heads][n][qk];
        double[][][] values = new double[heads][n][vd];
        for (int s = 0; s < n; s++) {
            double[] cs = new double[lora];
            for (int i = 0; i < lora; i++) {
                cs[i] = cache.get(s, i);
            }
            double[] kv = matvec(mw.kvB(), cs);
            for (int h = 0; h < heads; h++) {
                int base = h * (nope + vd);
                for (int i = 0; i < nope; i++) {
                    keys[h][s][i] = kv[base + i];
                }
                for (int i = 0; i < rope; i++) {
                    keys[h][s][nope + i] = cache.get(s, lora + i);
                }
                for (int i = 0; i < vd; i++) {
                    values[h][s][i] = kv[base + nope + i];
                }
            }
        }
        double[] o = new double[heads * vd];
        for (int h = 0; h < heads; h++) {
            double[] oh = attend(slice(q, h * qk, qk), keys[h], values[h], m.softmaxScale());
            System.arraycopy(oh, 0, o, h * vd, vd);
        }
        return matvec(mw.oProj(), o);
    }

    private static double[] swiglu(MlpWeights m, double[] x) {
        return ReferenceOps.swiglu(m.gate(), m.up(), m.down(), x);
    }

    /** MoE (spec section 6): routed experts weighted by the router, plus the shared expert. */
    private double[] moe(MoeWeights mw, double[] x) {
        MoeConfig m = cfg.moe();
        int[] experts = new int[m.expertsPerToken()];
        double[] weights = new double[m.expertsPerToken()];
        Routing.route(m, matvec(mw.router(), x), mw.correctionBias(), experts, weights);
        double[] y = new double[x.length];
        for (int slot = 0; slot < experts.length; slot++) {
            double[] e = swiglu(mw.experts().get(experts[slot]), x);
            for (int i = 0; i < y.length; i++) {
                y[i] += weights[slot] * e[i];
            }
        }
        if (mw.shared() != null) {
            add(y, swiglu(mw.shared(), x));
        }
        return y;
    }

    private static double[][] loadState(float[] flat, int head, int kd, int vd) {
        double[][] s = new double[kd][vd];
        int base = head * kd * vd;
        for (int i = 0; i < kd; i++) {
            for (int j = 0; j < vd; j++) {
                s[i][j] = flat[base + i * vd + j];
            }
        }
        return s;
    }

    private static void storeState(double[][] s, float[] flat, int head) {
        int kd = s.length;
        int vd = s[0].length;
        int base = head * kd * vd;
        for (int i = 0; i < kd; i++) {
            for (int j = 0; j < vd; j++) {
                flat[base + i * vd + j] = (float) s[i][j];
            }
        }
    }

    private static double[] slice(double[] x, int from, int length) {
        double[] y = new double[length];
        System.arraycopy(x, from, y, 0, length);
        return y;
    }

    private static void add(double[] acc, double[] x) {
        for (int i = 0; i < acc.length; i++) {
            acc[i] += x[i];
        }
    }

    private static void copy(double[] src, float[] dst, int offset) {
        for (int i = 0; i < src.length; i++) {
            dst[offset + i] = (float) src[i];
        }
    }
}
