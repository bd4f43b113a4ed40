package dev.kimiserve.cuda;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.EngineCounters;
import dev.kimiserve.core.model.ForwardObserver;
import dev.kimiserve.core.model.Inputs;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.weights.ModelWeights;
import java.lang.System.Logger.Level;
import java.util.Arrays;
import java.util.List;

/**
 * The CUDA backend: the forward pass of spec section 2 on one GPU. Weights live on the device as bf16
 * ({@link DeviceWeights}), activations and state in fp32, sequence state in device pools ({@link DeviceStates}) that
 * the host {@link SequenceState} objects point at; all scratch is allocated when the engine is made, so a decode step
 * allocates no device memory. Projections run on the warp GEMV kernels (fp32 activations) up to
 * {@link Options#cublasFromRows} rows and on cuBLASLt (tensor cores; activations split into two bf16 parts) from there; when
 * K = V = 128 a decode step's KDA core is one fused launch below {@link #FUSED_KDA_BELOW_ROWS} sequences (conv, norms,
 * gates and kda_decode.cu's delta rule), conv + prep and kda_decode above, and prefill runs the chunked kda_prefill
 * kernels; other head sizes run the general kernels; MLA attends in
 * the weight-absorbed form over an fp32 paged latent cache; MoE routing, grouping and the expert projections run on
 * the device without a host round trip.
 *
 * <p>Thread-safe by a lock: one forward pass at a time (a worker's batching loop calls it from one thread anyway).
 */
public final class CudaEngine implements Engine {
    private static final System.Logger LOG = System.getLogger(CudaEngine.class.getName());
    /**
     * Decode batches below this many sequences run a KDA layer's conv, prep and delta rule as one fused launch
     * (kda_step_decode); larger ones as kda_conv_prep_decode + kda_decode, the same sums bit for bit. H100, 48B --layers 8:
     * batch 16 decoded 2,419 / 2,428 tok/s fused against 2,446 / 2,477 in two launches (batch 1: within the spread;
     * Nsight Compute: 8.6 us per layer against 7.8 + 6.6).
     */
    static final int FUSED_KDA_BELOW_ROWS = 16;
    /** Logit rows computed per lm_head launch when every prefill position's logits are wanted. */
    private static final int LOGIT_ROWS = 64;

    /**
     * @param maxSequences    sequences whose state stays on the device at once (more are swapped through the host)
     * @param cacheTokens     MLA latent-cache tokens per MLA layer, over all resident sequences
     * @param prefillChunk    rows per prefill forward pass (longer prompts go in pieces)
     * @param cublasFromRows  projections of at least this many rows run on tensor cores through cuBLASLt; 0 never
     * @param tcFromRows      projections and expert GEMVs of at least this many rows (below cuBLASLt's) run on gemv.cu's
     *                        tensor-core kernels, activations split into two bf16 parts; fewer rows on the fp32 kernels.
     *                        Within each range a row's result does not depend on the other rows of the batch; 0 never
     * @param bf16Activations on cuBLASLt, round activations to bf16 (one product, what most engines do) instead of
     *                        splitting them into two bf16 parts (two products, fp32-accurate: the default)
     * @param cudaGraphs      replay each decode step as one CUDA graph (captured once per batch size and page-table width)
     * @param overlapLaunches launch each kernel while the one before it still runs (programmatic dependent launch, sm_90
     *                        only): it prefetches its weights, then waits for its inputs. The results are the same
     */
    public record Options(int maxSequences, int cacheTokens, int prefillChunk, int cublasFromRows, int tcFromRows,
                          boolean bf16Activations, boolean cudaGraphs, boolean overlapLaunches) {
        /** With overlapped launches (the default). */
        public Options(int maxSequences, int cacheTokens, int prefillChunk, int cublasFromRows, int tcFromRows, boolean bf16Activations,
                       boolean cudaGraphs) {
            this(maxSequences, cacheTokens, prefillChunk, cublasFromRows, tcFromRows, bf16Activations, cudaGraphs, true);
        }

        /** H100, 48B --layers 8: at batch 1 the fp32 GEMV decoded 652 tok/s against the tensor cores' 524; at batch 4, 951 against 1098. */
        public static final int DEFAULT_TC_FROM_ROWS = 4;

        public static Options fromEnvironment() {
            String precision = System.getProperty("kimi.cuda.activations", System.getenv("KIMI_CUDA_ACTIVATIONS"));
            boolean bf16 = precision != null && precision.trim().equalsIgnoreCase("bf16");
            if (precision != null && !precision.isBlank() && !bf16 && !precision.trim().equalsIgnoreCase("fp32")) {
                throw new IllegalArgumentException("kimi.cuda.activations / KIMI_CUDA_ACTIVATIONS must be fp32 or bf16, got '" + precision + "'");
            }
            return new Options(setting("kimi.cuda.max-sequences", 64), setting("kimi.cuda.cache-tokens", 131072),
                    setting("kimi.cuda.prefill-chunk", 1024), setting("kimi.cuda.cublas-from-rows", 64),
                    setting("kimi.cuda.tc-from-rows", DEFAULT_TC_FROM_ROWS), bf16, setting("kimi.cuda.graphs", 1) != 0,
                    setting("kimi.cuda.overlap", 1) != 0);
        }

        private static int setting(String key, int fallback) {
            String env = key.toUpperCase(java.util.Locale.ROOT).replace('.', '_').replace('-', '_');
            String v = System.getProperty(key, System.getenv(env));
            if (v == null || v.isBlank()) {
                return fallback;
            }
            try {
                int n = Integer.parseInt(v.trim());
                if (n >= 0) {
                    return n;
                }
            } catch (NumberFormatException ignored) {
                // reported below
            }
            throw new IllegalArgumentException(key + " / " + env + " must be a non-negative integer, got '" + v + "'");
        }
    }

    private final KimiLinearConfig cfg;
    private final Options options;
    private final CudaDevice device;
    private final boolean ownsDevice;
    private final CudaModule engineModule, kdaDecodeModule, kdaPrefillModule, gemvModule;
    private final EngineKernels k;
    private final KdaDecodeKernel kdaDecode;
    private final KdaPrefillKernel kdaPrefill;
    private final CublasLt cublas;
    private final DeviceWeights w;
    private final DeviceStates states;
    private final Scratch s;
    private final EngineCounters counters = new EngineCounters();
    private final int maxRows;
    private final String cublasState;
    private final DecodeGraphs graphs;
    private final HostLogits hostLogits;
    /** lm_head's weight rows of each {@link HostLogits} column part (views of {@code w.lmHead}). */
    private final DeviceWeights.Matrix[] lmHeadParts;
    /** Whether kernels launch overlapped ({@link Options#overlapLaunches} on an sm_90 device). */
    private final boolean overlap;
    private final DeviceBatch batch;
    private DeviceBuffer kdaPrefillScratch;
    private KdaPrefillKernel.Plan kdaPlan;
    private int[] kdaPlanCounts;
    private long expertLoadsReported;

    /** On GPU 0 (opened here and closed with the engine), options from system properties / environment. */
    public CudaEngine(ModelWeights weights) {
        this(weights, CudaDevice.open(0), Options.fromEnvironment(), true);
    }

    /** On {@code device}, which stays open when the engine closes. */
    public CudaEngine(ModelWeights weights, CudaDevice device, Options options) {
        this(weights, device, options, false);
    }

    private CudaEngine(ModelWeights weights, CudaDevice device, Options options, boolean ownsDevice) {
        this.cfg = weights.config();
        this.options = options;
        this.device = device;
        this.ownsDevice = ownsDevice;
        if (options.maxSequences() <= 0 || options.prefillChunk() <= 0) {
            throw new IllegalArgumentException("kimi.cuda.max-sequences and kimi.cuda.prefill-chunk must be positive");
        }
        if (cfg.moe() != null && (cfg.moe().numExpertGroups() > 64 || cfg.moe().expertsPerToken() > 32 || cfg.moe().numExperts() > 4096)) {
            throw new IllegalArgumentException("the cuda backend routes at most 4096 experts in up to 64 groups, top-k up to 32; this model has "
                    + cfg.moe().numExperts() + " experts, " + cfg.moe().numExpertGroups() + " groups, top-" + cfg.moe().expertsPerToken());
        }
        if (cfg.kda() != null && cfg.kda().convKernel() - 1 > 8 || cfg.mla() != null && cfg.mla().kvLoraRank() > 1024) {
            throw new IllegalArgumentException("the cuda backend supports short convs up to 9 taps and kv_lora_rank up to 1024");
        }
        device.makeCurrent();
        java.util.ArrayDeque<AutoCloseable> opened = new java.util.ArrayDeque<>();   // closed again if a later step fails
        try {
            engineModule = track(opened, new CudaModule(device, "engine"));
            kdaDecodeModule = track(opened, new CudaModule(device, "kda_decode"));
            kdaPrefillModule = track(opened, new CudaModule(device, "kda_prefill"));
            gemvModule = track(opened, new CudaModule(device, "gemv"));
            overlap = options.overlapLaunches() && KernelLaunch.overlapSupported(device);
            k = new EngineKernels(device, engineModule, gemvModule, options.tcFromRows(), overlap);
            kdaDecode = new KdaDecodeKernel(device, kdaDecodeModule, null, overlap);
            kdaPrefill = new KdaPrefillKernel(device, kdaPrefillModule);
            String noCublas = options.cublasFromRows() > 0 ? CublasLt.unavailableReason() : "switched off";
            cublas = noCublas == null ? track(opened, new CublasLt(device)) : null;
            cublasState = cublas != null ? "from " + options.cublasFromRows() + " rows, " + (options.bf16Activations() ? "bf16" : "split fp32")
                    + " activations" : "off (" + noCublas + ")";
            maxRows = Math.max(options.prefillChunk(), options.maxSequences());
            w = track(opened, new DeviceWeights(device, weights));
            states = track(opened, new DeviceStates(device, cfg, options.maxSequences(), Math.max(cachePages(), 1)));
            s = track(opened, new Scratch(device, cfg, maxRows, Math.max(options.maxSequences(), LOGIT_ROWS)));
            graphs = track(opened, new DecodeGraphs(device));
            hostLogits = track(opened, new HostLogits(device, Math.max(options.maxSequences(), LOGIT_ROWS), cfg.vocabSize()));
            lmHeadParts = lmHeadParts(w.lmHead, hostLogits);
            batch = track(opened, new DeviceBatch(device, k, 8 * maxRows + 1024, graphs::clear));
        } catch (RuntimeException | Error e) {
            while (!opened.isEmpty()) {
                try {
                    opened.pop().close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            if (ownsDevice) {
                device.close();
            }
            throw e;
        }
        LOG.log(Level.INFO, "cuda engine on " + device.name() + ": weights " + (w.bytes() >> 20) + " MiB, " + options.maxSequences()
                + " sequence slots, " + (long) cachePages() * MlaCache.PAGE_TOKENS + " cache tokens, tensor-core GEMV "
                + (options.tcFromRows() > 0 ? "from " + options.tcFromRows() + " rows" : "off") + ", cuBLASLt " + cublasState + ", overlapped launches "
                + (overlap ? "on" : options.overlapLaunches() ? "off (sm_" + device.computeCapability() + ", needs sm_90)" : "off"));
    }

    private static <T extends AutoCloseable> T track(java.util.ArrayDeque<AutoCloseable> opened, T resource) {
        opened.push(resource);
        return resource;
    }

    /** Pages of the MLA latent pool (per MLA layer). */
    private int cachePages() {
        return cfg.mla() == null ? 0 : (options.cacheTokens() + MlaCache.PAGE_TOKENS - 1) / MlaCache.PAGE_TOKENS;
    }

    @Override
    public KimiLinearConfig config() {
        return cfg;
    }

    @Override
    public String backend() {
        return "cuda";
    }

    /** The counters, with the distinct-expert count brought up to date from the device (waits for the stream). */
    @Override
    public EngineCounters counters() {
        synchronized (states) {
            device.makeCurrent();
            int[] words = new int[2];
            s.expertLoads.download(words);
            long loads = (words[0] & 0xffffffffL) | ((long) words[1] << 32);
            counters.distinctExpertLoads.add(loads - expertLoadsReported);
            expertLoadsReported = loads;
        }
        return counters;
    }

    public CudaDevice device() {
        return device;
    }

    @Override
    public float[] prefill(int[] tokens, SequenceState state, Logits mode, ForwardObserver observer) {
        Inputs.checkTokens(cfg, tokens);
        Inputs.checkContext(cfg, state, tokens.length);
        int vocab = cfg.vocabSize();
        float[] logits = new float[(mode == Logits.ALL ? tokens.length : 1) * vocab];
        synchronized (states) {
            device.makeCurrent();
            for (int start = 0; start < tokens.length; start += options.prefillChunk()) {
                int count = Math.min(options.prefillChunk(), tokens.length - start);
                forward(Arrays.copyOfRange(tokens, start, start + count), new SequenceState[]{state}, new int[]{count}, false,
                        start == 0 && count == tokens.length ? observer : ForwardObserver.NONE);
                if (mode == Logits.ALL) {
                    for (int r = 0; r < count; r += LOGIT_ROWS) {
                        int n = Math.min(LOGIT_ROWS, count - r);
                        head(r, n, logits, (start + r) * vocab);
                    }
                } else if (start + count == tokens.length) {
                    head(count - 1, 1, logits, 0);
                }
            }
        }
        return logits;
    }

    @Override
    public void decode(int[] tokens, SequenceState[] seqs, float[] logits) {
        Inputs.checkDecode(cfg, tokens, seqs, logits);
        synchronized (states) {
            device.makeCurrent();
            int group = options.maxSequences();
            for (int from = 0; from < tokens.length; from += group) {
                int n = Math.min(group, tokens.length - from);
                int[] ones = new int[n];
                Arrays.fill(ones, 1);
                forward(Arrays.copyOfRange(tokens, from, from + n), Arrays.copyOfRange(seqs, from, from + n), ones, true, ForwardObserver.NONE);
                lmHead(s.normed, n);
                logitsToHost(n, logits, from * cfg.vocabSize());
            }
        }
    }

    @Override
    public void release(SequenceState state) {
        synchronized (states) {
            states.release(state);
        }
    }

    private void observe(ForwardObserver observer, int index, DeviceBuffer hidden, int rows) {
        if (observer != ForwardObserver.NONE) {
            observer.hidden(index, toHost(hidden, rows * cfg.hiddenSize()), rows, cfg.hiddenSize());
        }
    }

    private static float[] toHost(DeviceBuffer b, int floats) {
        float[] v = new float[floats];
        b.download(v, 0, floats);
        return v;
    }

    /** lm_head over final-norm rows [row, row + n) into {@code out[offset ..]}. */
    private void head(int row, int n, float[] out, int offset) {
        lmHead(view(s.normed, row * cfg.hiddenSize()), n);
        logitsToHost(n, out, offset);
    }

    /**
     * lm_head over {@code rows} rows of {@code x} into {@code s.logits}, in {@link HostLogits}' column parts (each its
     * own [rows, columns] block, marked done as it is launched), so that copying it to the host overlaps the rest.
     */
    private void lmHead(DeviceBuffer x, int rows) {
        for (int p = 0; p < lmHeadParts.length; p++) {
            project(x, cfg.hiddenSize(), lmHeadParts[p], view(s.logits, (long) rows * hostLogits.columnStart(p)), rows);
            hostLogits.partDone(p);
        }
    }

    /** The weight rows of each column part of {@code logits}: part p is rows [columnStart(p), columnStart(p + 1)) of head. */
    private static DeviceWeights.Matrix[] lmHeadParts(DeviceWeights.Matrix head, HostLogits logits) {
        int d = head.cols();
        DeviceWeights.Matrix[] parts = new DeviceWeights.Matrix[logits.parts()];
        for (int p = 0; p < parts.length; p++) {
            int c0 = logits.columnStart(p);
            int columns = logits.columnStart(p + 1) - c0;
            parts[p] = new DeviceWeights.Matrix(head.data().slice(2L * c0 * d, 2L * columns * d), columns, d);
        }
        return parts;
    }

    /** The first {@code n} rows of logits (lm_head's parts in {@code s.logits}) into {@code out[offset ..]}; waits for them. */
    private void logitsToHost(int n, float[] out, int offset) {
        k.timed("logits_to_host", () -> hostLogits.download(s.logits, n, out, offset));
    }

    /**
     * One forward pass over segments (one per state, {@code counts[i]} rows each, back to back): embedding, every
     * layer, the final norm into {@code s.normed}; the states advance and stay resident on the device.
     */
    private void forward(int[] tokens, SequenceState[] seqs, int[] counts, boolean decodeStep, ForwardObserver observer) {
        int rows = tokens.length;
        int[] slotOf = states.prepare(seqs, counts);
        boolean allDecode = Arrays.stream(counts).allMatch(c -> c == 1);
        List<List<Integer>> pages = Arrays.stream(seqs).map(st -> cfg.mla() == null ? List.<Integer>of() : states.pagesOf(st)).toList();
        DeviceBatch.View b = batch.upload(tokens, seqs, counts, slotOf, pages, allDecode && rows <= options.maxSequences());
        k.phase(allDecode ? "decode" : "prefill");
        try {
            if (allDecode && decodeStep && options.cudaGraphs() && !k.profiling()) { // a decode step (not a 1-token prefill): one graph
                graphs.launch(((long) rows << 32) | b.maxPages(), () -> layers(rows, seqs.length, b, true, ForwardObserver.NONE));
            } else {
                layers(rows, seqs.length, b, allDecode, observer);
            }
        } catch (RuntimeException | Error e) {
            states.failed(seqs);                                            // never hand out a half-updated state
            throw e;
        }
        for (int i = 0; i < seqs.length; i++) {
            seqs[i].advance(counts[i]);
            seqs[i].residentOn(states);
        }
        counters.forwardPasses.increment();
        counters.tokens.add(rows);
    }

    /**
     * Embedding, every layer and the final norm into {@code s.normed}.
     * An observer other than NONE gets the hidden states copied to the host after each layer (slow; for debugging).
     */
    private void layers(int rows, int segs, DeviceBatch.View b, boolean allDecode, ForwardObserver observer) {
        int d = cfg.hiddenSize();
        k.embedRows(rows, w.embed.data(), b.ids(), s.h, d);
        observe(observer, 0, s.h, rows);
        KdaPrefillKernel.Plan plan = cfg.kda() != null && cfg.kda().headDim() == KdaPrefillKernel.HEAD_DIM && !allDecode
                ? kdaPlan(b.counts()) : null;
        for (int l = 0; l < cfg.numLayers(); l++) {
            DeviceWeights.Layer lw = w.layers[l];
            k.addRmsNorm(rows, s.h, d, l == 0 ? null : s.mixed, lw.inputNorm(), s.normed, d, d, cfg.rmsNormEps()); // (residual +) input_layernorm
            if (l > 0) {
                observe(observer, l, s.h, rows);                                                                    // output of layer l-1
            }
            if (lw.kda() != null) {
                kda(l, lw.kda(), rows, segs, b, allDecode, plan);                                                // KDA mixer
            } else {
                mla(l, lw.mla(), rows, b);                                                                          // MLA mixer
            }
            k.addRmsNorm(rows, s.h, d, s.mixed, lw.postNorm(), s.normed, d, d, cfg.rmsNormEps());                // residual + post_attention_layernorm
            if (lw.dense() != null) {
                mlp(lw.dense(), rows, s.mixed);                                                                     // dense MLP
            } else {
                moe(lw.moe(), rows);                                                                                // MoE
            }
        }
        k.addRmsNorm(rows, s.h, d, s.mixed, w.finalNorm, s.normed, d, d, cfg.rmsNormEps());                       // residual + model.norm
        observe(observer, cfg.numLayers(), s.h, rows);
        if (observer != ForwardObserver.NONE) {
            observer.finalNorm(toHost(s.normed, rows * d), rows, d);
        }
    }

    /**
     * The chunk bookkeeping of kda_prefill for these sequence lengths: kept from the previous prefill when the lengths
     * are the same (every full chunk of a long prompt), so the steady state allocates and waits for nothing.
     */
    private KdaPrefillKernel.Plan kdaPlan(int[] counts) {
        if (kdaPlan == null || !Arrays.equals(kdaPlanCounts, counts)) {
            if (kdaPlan != null) {
                device.synchronize();                                      // the old plan may still be read
                kdaPlan.close();
            }
            kdaPlan = new KdaPrefillKernel.Plan(device, counts);
            kdaPlanCounts = counts.clone();
        }
        return kdaPlan;
    }

    private void kda(int layer, DeviceWeights.Kda kw, int rows, int segs, DeviceBatch.View b, boolean allDecode, KdaPrefillKernel.Plan plan) {
        KdaConfig c = cfg.kda();
        int heads = c.numHeads();
        int hd = c.headDim();
        int ch = c.projectionSize();
        int in = kw.in().rows();                                            // 3C + 2R + H
        project(s.normed, cfg.hiddenSize(), kw.in(), s.proj, rows);         // q|k|v|f_a|g_a|b projections
        if (!allDecode) {
            k.convSilu(segs, s.proj, in, kw.taps(), states.conv[layer], b.segStart(), b.segCount(), b.segSlot(), s.conv, 3 * ch,
                    c.convKernel() - 1);
        }
        project(view(s.proj, 3 * ch), in, kw.fB(), s.gate, rows);           // f_b_proj(f_a_proj(x))
        project(view(s.proj, 3 * ch + hd), in, kw.gB(), s.outGate, rows);   // g_b_proj(g_a_proj(x))
        DeviceBuffer betaRaw = view(s.proj, 3 * ch + 2 * hd);
        if (allDecode && hd == KdaDecodeKernel.HEAD_DIM && rows < FUSED_KDA_BELOW_ROWS) {   // conv + SiLU, norms, gates, delta rule: one launch
            k.kdaStepDecode(rows, heads, s.proj, in, kw.taps(), states.conv[layer], b.segSlot(), s.gate, ch, betaRaw, in, kw.aLog(), kw.dtBias(),
                    states.recurrent[layer], s.o, c.convKernel() - 1);
        } else {
            kdaCore(layer, kw, rows, segs, b, allDecode, plan, betaRaw);
        }
        k.kdaOutNorm(rows, heads, s.o, s.outGate, ch, kw.oNorm(), s.y, hd, cfg.rmsNormEps()); // o_norm(o, gate)
        project(s.y, ch, kw.out(), s.mixed, rows);                          // o_proj
    }

    /** The KDA core into s.o where the fused decode step does not apply: prefill, larger decode batches, other head sizes. */
    private void kdaCore(int layer, DeviceWeights.Kda kw, int rows, int segs, DeviceBatch.View b, boolean allDecode, KdaPrefillKernel.Plan plan,
                         DeviceBuffer betaRaw) {
        KdaConfig c = cfg.kda();
        int heads = c.numHeads();
        int hd = c.headDim();
        int ch = c.projectionSize();
        int in = kw.in().rows();
        if (allDecode) {                                                    // conv + SiLU, norms, gates in one launch
            k.kdaConvPrepDecode(rows, heads, s.proj, in, kw.taps(), states.conv[layer], b.segSlot(), s.gate, ch, betaRaw, in, kw.aLog(),
                    kw.dtBias(), s.q, s.k, s.v, s.g, s.beta, hd, c.convKernel() - 1);
        } else {
            k.kdaPrep(rows, heads, s.conv, s.gate, ch, betaRaw, in, kw.aLog(), kw.dtBias(), s.q, s.k, s.v, s.g, s.beta, hd);
        }
        if (hd == KdaDecodeKernel.HEAD_DIM && allDecode) {                  // the delta rule (the fused step's sums)
            k.timed("kda_decode", () -> kdaDecode.launch(rows, heads, s.q, s.k, s.v, s.g, s.beta, b.segSlot(), states.recurrent[layer], s.o));
        } else if (plan != null) {
            long need = KdaPrefillKernel.scratchBytes(plan, heads);
            if (kdaPrefillScratch == null || kdaPrefillScratch.bytes() < need) {
                if (kdaPrefillScratch != null) {
                    device.synchronize();
                    kdaPrefillScratch.close();
                }
                kdaPrefillScratch = DeviceBuffer.allocate(device, need);
            }
            k.timed("kda_prefill", () -> kdaPrefill.launch(plan, heads, s.q, s.k, s.v, s.g, s.beta, b.segSlot(), states.recurrent[layer],
                    kdaPrefillScratch, s.o));
        } else {
            k.kdaRecurrent(segs, heads, s.q, s.k, s.v, s.g, s.beta, b.segStart(), b.segCount(), b.segSlot(), states.recurrent[layer], s.o, hd, hd);
        }
    }

    private void mla(int layer, DeviceWeights.Mla mw, int rows, DeviceBatch.View b) {
        MlaConfig c = cfg.mla();
        int heads = c.numHeads();
        int qk = c.qkHeadDim();
        int lora = c.kvLoraRank();
        int latent = c.latentSize();
        int in = mw.in().rows();
        int qCols = in - latent;                                            // H*Q, or the q LoRA rank
        project(s.normed, cfg.hiddenSize(), mw.in(), s.proj, rows);         // [q or q_a | kv_a] projections
        DeviceBuffer q = s.proj;
        int ldq = in;
        if (mw.qB() != null) {                                              // q = q_b(q_a_layernorm(q_a(x)))
            k.addRmsNorm(rows, s.proj, in, null, mw.qANorm(), s.y, qCols, qCols, 1e-6f);
            project(s.y, qCols, mw.qB(), s.qMla, rows);
            q = s.qMla;
            ldq = heads * qk;
        }
        DeviceBuffer kva = view(s.proj, qCols);
        k.addRmsNorm(rows, kva, in, null, mw.kvANorm(), kva, in, lora, (float) c.kvALayernormEps()); // c = kv_a_layernorm(c); k_pe as is (NoPE)
        k.mlaAppend(rows, kva, in, b.dstRow(), states.cache[layer], latent);
        k.mlaAbsorbQ(rows, heads, q, ldq, mw.kvB().data(), s.qAbs, c.qkNopeHeadDim(), c.qkRopeHeadDim(), c.vHeadDim(), lora);
        float scale = (float) c.softmaxScale();
        k.mlaAttend(rows, heads, s.qAbs, states.cache[layer], b.pageTable(), b.maxPages(), b.tokSeg(), b.tokPos(), scale, s.z, lora,
                latent, b.decode() ? Scratch.ATTEND_SPLITS : 1, s.attendZ, s.attendMl);   // decode: split each context
        k.mlaValue(rows, heads, s.z, mw.kvB().data(), s.o, c.qkNopeHeadDim(), c.vHeadDim(), lora);
        project(s.o, heads * c.vHeadDim(), mw.out(), s.mixed, rows);       // o_proj
    }

    /** out = down(silu(gate x) * up x) of the post-attention norm. */
    private void mlp(DeviceWeights.Mlp m, int rows, DeviceBuffer out) {
        project(s.normed, cfg.hiddenSize(), m.gateUp(), s.proj, rows);
        if (swigluOnLoad(s.proj, 2 * m.width(), m.down().rows(), m.width(), rows)) {   // the fp32 GEMV takes gate|up, no swiglu launch
            k.gemvSwiglu(s.proj, 2 * m.width(), m.down().data(), out, cfg.hiddenSize(), rows, m.down().rows(), m.width());
        } else {
            k.swiglu(rows, s.proj, 2 * m.width(), s.act, m.width(), m.width());
            project(s.act, m.width(), m.down(), out, rows);
        }
    }

    /**
     * Whether a down projection of this many rows runs on the fp32 GEMV, which takes gate|up and stages its SwiGLU itself
     * (one launch less, the values the swiglu kernel writes); tensor cores and cuBLASLt take the swiglu kernel's output.
     */
    private boolean swigluOnLoad(DeviceBuffer gateUp, int ldx, int outputs, int width, int rows) {
        return (cublas == null || rows < options.cublasFromRows()) && k.swigluOnLoad(gateUp, ldx, outputs, width, rows);
    }

    private void moe(DeviceWeights.Moe mw, int rows) {
        MoeConfig c = cfg.moe();
        int d = cfg.hiddenSize();
        int e = c.numExperts();
        int topk = c.expertsPerToken();
        int width = mw.width();
        // router logits, fp32 (choices are discontinuous); where the shared expert's gate|up runs on the same fp32 GEMV,
        // one launch makes both of the same input: s.proj rows = [logits (E) | shared gate (I) | shared up (I)]
        DeviceWeights.Matrix both = mw.routerAndShared();
        boolean together = both != null && swigluOnLoad(view(s.proj, e), both.rows(), d, mw.shared().width(), rows);
        int ldl = together ? both.rows() : e;
        DeviceBuffer logits = together ? s.proj : s.routerLogits;
        k.gemvFp32(s.normed, d, (together ? both : mw.router()).data(), logits, ldl, rows, ldl, d, false);
        int pairs = rows * topk;
        // one token on the fp32 kernel: its pairs have distinct experts, one per tile, laid out by the routing itself
        int tileRows = rows == 1 && !k.tensorCores(rows) ? 1 : EngineKernels.GEMV_ROWS;
        int maxTiles = maxTiles(rows, tileRows);
        k.moeRoute(rows, logits, ldl, mw.bias(), e, topk, c.numExpertGroups(), c.topkGroups(), c.renormalize(),
                c.weightsUseCorrectionBias(), c.routedScalingFactor(), s.expertIds, s.expertWeights, tileRows == 1 ? s.tiles : null);
        if (tileRows != 1) {
            k.moeAlign(s.expertIds, pairs, e, s.order, s.tileExpert, s.tileCount, s.expertLoads, tileRows);
        }
        k.moeGemv(rows, tileRows, maxTiles, s.normed, d, s.order, s.tileExpert, s.tileCount, topk, 0, mw.gateUp(), 2L * width * d, s.expertHidden,
                2 * width, 2 * width, d);                                   // gate|up of each (token, expert)
        boolean onLoad = k.moeSwigluOnLoad(rows, tileRows, width);         // the fp32 expert kernels take gate|up
        if (!onLoad) {
            k.swiglu(maxTiles * tileRows, s.expertHidden, 2 * width, s.expertAct, width, width);
        }
        k.moeGemv(rows, tileRows, maxTiles, onLoad ? s.expertHidden : s.expertAct, onLoad ? 2 * width : width, s.order, s.tileExpert,
                s.tileCount, topk, 1, mw.down(), (long) d * width, s.pairOut, d, d, width, onLoad);   // down of each pair
        if (together) {                                                     // shared expert: down of the gate|up made above
            DeviceWeights.Mlp shared = mw.shared();
            k.gemvSwiglu(view(s.proj, e), ldl, shared.down().data(), s.mixed, d, rows, d, shared.width());
        } else if (mw.shared() != null) {
            mlp(mw.shared(), rows, s.mixed);                                // shared expert
        } else {
            s.mixed.slice(0, 4L * rows * d).fill(0f);
        }
        k.moeCombine(rows, s.pairOut, s.expertWeights, topk, s.mixed, d);   // + sum of weight * expert output
    }

    /** Tiles of {@code tileRows} pair positions the MoE grouping can use for {@code rows} tokens. */
    private int maxTiles(int rows, int tileRows) {
        int pairs = rows * cfg.moe().expertsPerToken();
        return pairs / tileRows + Math.min(pairs, cfg.moe().numExperts());
    }

    /**
     * y[m, w.rows] = x[m, w.cols] · w^T: on tensor cores (cuBLASLt) from {@link Options#cublasFromRows} rows, with the
     * activations split into two bf16 parts (or rounded once, {@link Options#bf16Activations}); else the fp32 warp GEMV.
     */
    private void project(DeviceBuffer x, int ldx, DeviceWeights.Matrix m, DeviceBuffer y, int rows) {
        if (cublas != null && rows >= options.cublasFromRows()) {
            if (options.bf16Activations()) {
                k.toBf16(rows, x, ldx, s.bf16, m.cols());
                k.timed("cublasLt", () -> cublas.matmul(s.bf16, m.data(), y, rows, m.rows(), m.cols(), CublasLt.Out.F32));
            } else {
                long half = 2L * rows * m.cols();                               // bytes of one bf16 part
                k.toBf16Split(rows, x, ldx, s.bf16, s.bf16.slice(half, half), m.cols());
                // [hi; lo] · w^T in one product, so the weights are read once; y = its top half + its bottom half
                k.timed("cublasLt", () -> cublas.matmul(s.bf16, m.data(), s.splitProduct, 2 * rows, m.rows(), m.cols(), CublasLt.Out.F32));
                k.addHalves(y, s.splitProduct, (long) rows * m.rows());
            }
        } else {
            k.gemv(x, ldx, m.data(), y, m.rows(), rows, m.rows(), m.cols(), false);
        }
    }

    private static DeviceBuffer view(DeviceBuffer b, long floatOffset) {
        return b.slice(4L * floatOffset, b.bytes() - 4L * floatOffset);
    }

    @Override
    public void close() {
        synchronized (states) {
            device.makeCurrent();
            device.synchronize();
            if (k.profiling()) {
                System.err.print("cuda engine profile (each launch waited for):\n" + k.profileTable());
            }
            graphs.close();
            hostLogits.close();
            states.close();
            s.close();
            w.close();
            batch.close();
            if (kdaPrefillScratch != null) {
                kdaPrefillScratch.close();
            }
            if (kdaPlan != null) {
                kdaPlan.close();
            }
            if (cublas != null) {
                cublas.close();
            }
            engineModule.close();
            kdaDecodeModule.close();
            kdaPrefillModule.close();
            gemvModule.close();
            if (ownsDevice) {
                device.close();
            }
        }
    }
}
