package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.ForwardObserver;
import dev.kimiserve.core.model.Inputs;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.weights.LayerWeights;
import dev.kimiserve.core.weights.ModelWeights;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPU backend: the straight-line forward pass (spec section 2) over a ragged batch of sequences, fp32 activations,
 * weights read in place from the mapped checkpoint. Prefill uses chunked KDA and expanded MLA; decode uses recurrent KDA
 * and absorbed MLA, for any number of sequences per step.
 */
public final class CpuEngine implements Engine {
    private final ModelWeights w;
    private final KimiLinearConfig cfg;
    private final KdaMixer[] kda;
    private final MlaMixer[] mla;

    public CpuEngine(ModelWeights weights) {
        this.w = weights;
        this.cfg = weights.config();
        this.kda = new KdaMixer[cfg.numLayers()];
        this.mla = new MlaMixer[cfg.numLayers()];
        for (int i = 0; i < cfg.numLayers(); i++) {
            LayerWeights lw = weights.layer(i);
            if (cfg.layerKind(i) == LayerKind.KDA) {
                kda[i] = new KdaMixer(cfg.kda(), lw.kda(), i, cfg.rmsNormEps());
            } else {
                mla[i] = new MlaMixer(cfg.mla(), lw.mla(), i);
            }
        }
    }

    @Override
    public KimiLinearConfig config() {
        return cfg;
    }

    @Override
    public String backend() {
        return "cpu";
    }

    @Override
    public float[] prefill(int[] tokens, SequenceState state, Logits mode, ForwardObserver observer) {
        Inputs.checkTokens(cfg, tokens);
        Inputs.checkContext(cfg, state, tokens.length);
        float[] normed = forward(tokens, List.of(new Segment(state, 0, tokens.length, false)), observer);
        int d = cfg.hiddenSize();
        if (mode == Logits.ALL) {
            float[] logits = new float[tokens.length * cfg.vocabSize()];
            Matmul.matmul(normed, tokens.length, w.lmHead(), logits);
            return logits;
        }
        float[] last = new float[d];
        System.arraycopy(normed, (tokens.length - 1) * d, last, 0, d);
        float[] logits = new float[cfg.vocabSize()];
        Matmul.matmul(last, 1, w.lmHead(), logits);
        return logits;
    }

    @Override
    public void decode(int[] tokens, SequenceState[] states, float[] logits) {
        Inputs.checkDecode(cfg, tokens, states, logits);
        List<Segment> segments = new ArrayList<>(states.length);
        for (int b = 0; b < states.length; b++) {
            segments.add(new Segment(states[b], b, 1, true));
        }
        float[] normed = forward(tokens, segments, ForwardObserver.NONE);
        Matmul.matmul(normed, tokens.length, w.lmHead(), logits);
    }

    /** Embedding, every decoder layer, final norm; returns the final-norm output [rows, D]. */
    private float[] forward(int[] tokens, List<Segment> segments, ForwardObserver observer) {
        int rows = tokens.length;
        int d = cfg.hiddenSize();
        float[] h = new float[rows * d];
        for (int r = 0; r < rows; r++) {                               // h = embed_tokens(ids)
            long base = (long) tokens[r] * d;
            for (int i = 0; i < d; i++) {
                h[r * d + i] = w.embed().getFloat(base + i);
            }
        }
        observer.hidden(0, h, rows, d);
        float[] a = new float[rows * d];
        float[] mixed = new float[rows * d];
        for (int l = 0; l < cfg.numLayers(); l++) {
            LayerWeights lw = w.layer(l);
            Functions.rmsNorm(h, rows, d, lw.inputNorm(), cfg.rmsNormEps(), a);            // input_layernorm
            if (kda[l] != null) {
                kda[l].forward(a, rows, segments, mixed);                                  // KDA mixer
            } else {
                mla[l].forward(a, rows, segments, mixed);                                  // MLA mixer
            }
            Functions.addInPlace(h, mixed, rows * d);                                      // residual
            Functions.rmsNorm(h, rows, d, lw.postAttnNorm(), cfg.rmsNormEps(), a);         // post_attention_layernorm
            if (lw.dense() != null) {
                FeedForward.swiglu(lw.dense(), a, rows, mixed);                            // dense MLP
            } else {
                FeedForward.moe(cfg.moe(), lw.moe(), a, rows, d, mixed);                   // MoE
            }
            Functions.addInPlace(h, mixed, rows * d);                                      // residual
            observer.hidden(l + 1, h, rows, d);
        }
        Functions.rmsNorm(h, rows, d, w.finalNorm(), cfg.rmsNormEps(), a);                 // model.norm
        observer.finalNorm(a, rows, d);
        for (Segment s : segments) {
            s.state().advance(s.count());
        }
        return a;
    }
}
