package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.EngineCounters;
import dev.kimiserve.core.model.ForwardObserver;
import dev.kimiserve.core.model.Inputs;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.weights.LayerWeights;
import dev.kimiserve.core.weights.ModelWeights;
import java.util.ArrayList;
import java.util.List;

/**
 * The CPU backend: the straight-line forward pass (spec section 2) over a ragged batch of sequences on Vector API
 * kernels and a fixed thread pool. bf16 weights are read in place from the mapped checkpoint, activations and state
 * are fp32, scratch is preallocated and reused (nothing is allocated per step once the largest batch has been seen).
 * Prefill uses chunked KDA and expanded MLA and is split into pieces of {@link #prefillChunk} tokens; decode uses
 * recurrent KDA and absorbed MLA for any number of sequences per step.
 *
 * <p>Not thread-safe: one caller at a time (a worker's batching loop); the engine parallelises internally.
 */
public final class CpuEngine implements Engine {
    public static final int DEFAULT_PREFILL_CHUNK = 512;

    private final ModelWeights w;
    private final KimiLinearConfig cfg;
    private final CpuPool pool;
    private final Matmuls matmuls;
    private final int prefillChunk;
    private final KdaMixer[] kda;
    private final MlaMixer[] mla;
    private final FeedForward.Mlp[] dense;
    private final FeedForward.Mlp[][] experts;
    private final FeedForward.Mlp[] shared;
    private final WeightMatrix[] routers;
    private final WeightMatrix lmHead;
    private final MlaAttention attention;
    private final KdaMixer.Scratch kdaScratch = new KdaMixer.Scratch();
    private final MlaMixer.Scratch mlaScratch = new MlaMixer.Scratch();
    private final FeedForward.Scratch ffnScratch = new FeedForward.Scratch();
    private final EngineCounters counters = new EngineCounters();
    private final MatmulJob headJob = new MatmulJob();
    private float[] h = new float[0];
    private float[] normed = new float[0];
    private float[] paired = new float[0];
    private float[] mixed = new float[0];
    private int capacity;

    public CpuEngine(ModelWeights weights) {
        this(weights, Runtime.getRuntime().availableProcessors(), DEFAULT_PREFILL_CHUNK);
    }

    public CpuEngine(ModelWeights weights, int threads, int prefillChunk) {
        this.w = weights;
        this.cfg = weights.config();
        this.pool = new CpuPool(threads);
        this.matmuls = new Matmuls(pool);
        this.prefillChunk = prefillChunk;
        int n = cfg.numLayers();
        kda = new KdaMixer[n];
        mla = new MlaMixer[n];
        dense = new FeedForward.Mlp[n];
        experts = new FeedForward.Mlp[n][];
        shared = new FeedForward.Mlp[n];
        routers = new WeightMatrix[n];
        for (int i = 0; i < n; i++) {
            LayerWeights lw = weights.layer(i);
            if (cfg.layerKind(i) == LayerKind.KDA) {
                kda[i] = new KdaMixer(cfg.kda(), lw.kda(), i, cfg.rmsNormEps());
            } else {
                mla[i] = new MlaMixer(cfg.mla(), lw.mla(), i);
            }
            if (lw.dense() != null) {
                dense[i] = FeedForward.Mlp.of(lw.dense());
            } else {
                routers[i] = WeightMatrix.of(lw.moe().router());
                experts[i] = lw.moe().experts().stream().map(FeedForward.Mlp::of).toArray(FeedForward.Mlp[]::new);
                shared[i] = FeedForward.Mlp.of(lw.moe().shared());
            }
        }
        lmHead = WeightMatrix.of(weights.lmHead());
        attention = cfg.mla() != null ? new MlaAttention(cfg.mla(), pool, matmuls) : null;
    }

    @Override
    public KimiLinearConfig config() {
        return cfg;
    }

    @Override
    public String backend() {
        return "cpu";
    }

    public int threads() {
        return pool.threads();
    }

    @Override
    public EngineCounters counters() {
        return counters;
    }

    @Override
    public float[] prefill(int[] tokens, SequenceState state, Logits mode, ForwardObserver observer) {
        Inputs.checkTokens(cfg, tokens);
        Inputs.checkContext(cfg, state, tokens.length);
        int vocab = cfg.vocabSize();
        float[] logits = new float[(mode == Logits.ALL ? tokens.length : 1) * vocab];
        List<Segment> one = new ArrayList<>(1);
        for (int start = 0; start < tokens.length; start += prefillChunk) {
            int count = Math.min(prefillChunk, tokens.length - start);
            int[] piece = java.util.Arrays.copyOfRange(tokens, start, start + count);
            one.clear();
            one.add(new Segment(state, 0, count, false));
            forward(piece, one, start == 0 && count == tokens.length ? observer : ForwardObserver.NONE);
            if (mode == Logits.ALL) {
                matmuls.run(headJob.set(lmHead, paired, 0, cfg.hiddenSize(), count, logits, start * vocab, vocab));
            } else if (start + count == tokens.length) {
                matmuls.run(headJob.set(lmHead, paired, (count - 1) * cfg.hiddenSize(), cfg.hiddenSize(), 1, logits, 0, vocab));
            }
        }
        return logits;
    }

    @Override
    public void decode(int[] tokens, SequenceState[] states, float[] logits) {
        Inputs.checkDecode(cfg, tokens, states, logits);
        List<Segment> segments = new ArrayList<>(states.length);
        for (int b = 0; b < states.length; b++) {
            segments.add(new Segment(states[b], b, 1, true));
        }
        forward(tokens, segments, ForwardObserver.NONE);
        matmuls.run(headJob.set(lmHead, paired, tokens.length, logits));                  // lm_head
    }

    /** Embedding, every decoder layer, final norm; leaves the final-norm output in {@link #paired} (paired order). */
    private void forward(int[] tokens, List<Segment> segments, ForwardObserver observer) {
        int rows = tokens.length;
        int d = cfg.hiddenSize();
        ensure(rows);
        for (int r = 0; r < rows; r++) {                                                   // h = embed_tokens(ids)
            long base = (long) tokens[r] * d;
            for (int i = 0; i < d; i++) {
                h[r * d + i] = w.embed().getFloat(base + i);
            }
        }
        observer.hidden(0, h, rows, d);
        for (int l = 0; l < cfg.numLayers(); l++) {
            LayerWeights lw = w.layer(l);
            normRows(h, rows, lw.inputNorm());                                             // input_layernorm
            if (kda[l] != null) {
                kda[l].forward(pool, matmuls, kdaScratch, paired, rows, segments, mixed);  // KDA mixer
            } else {
                mla[l].forward(matmuls, attention, mlaScratch, paired, rows, segments, mixed); // MLA mixer
            }
            Functions.addInPlace(h, mixed, rows * d);                                      // residual
            normRows(h, rows, lw.postAttnNorm());                                          // post_attention_layernorm
            if (dense[l] != null) {
                FeedForward.dense(matmuls, ffnScratch, dense[l], paired, rows, mixed);     // dense MLP
            } else {
                FeedForward.moe(matmuls, ffnScratch, cfg.moe(), routers[l], lw.moe().correctionBias(), experts[l], shared[l],
                        paired, rows, d, mixed, counters);                                 // MoE
            }
            Functions.addInPlace(h, mixed, rows * d);                                      // residual
            observer.hidden(l + 1, h, rows, d);
        }
        normRows(h, rows, w.finalNorm());                                                  // model.norm
        observer.finalNorm(normed, rows, d);
        for (Segment s : segments) {
            s.state().advance(s.count());
        }
        counters.forwardPasses.increment();
        counters.tokens.add(rows);
    }

    /** normed = rmsnorm(x) (natural order, for observers) and paired = the same in paired order (kernel input). */
    private void normRows(float[] x, int rows, float[] weight) {
        int d = cfg.hiddenSize();
        for (int r = 0; r < rows; r++) {
            Norms.rmsNorm(x, r * d, d, weight, cfg.rmsNormEps(), normed, r * d);
            Vec.pairOrder(normed, r * d, d, paired, r * d);
        }
    }

    private void ensure(int rows) {
        if (rows <= capacity) {
            return;
        }
        int d = cfg.hiddenSize();
        h = new float[rows * d];
        normed = new float[rows * d];
        paired = new float[rows * d];
        mixed = new float[rows * d];
        if (cfg.kda() != null) {
            kdaScratch.ensure(rows, cfg.kda());
        }
        if (cfg.mla() != null) {
            mlaScratch.ensure(rows, cfg.mla());
        }
        ffnScratch.ensure(rows, d, cfg.intermediateSize(), cfg.moe());
        capacity = rows;
    }

    @Override
    public void close() {
        pool.close();
    }
}
