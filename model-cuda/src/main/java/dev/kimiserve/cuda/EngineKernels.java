package dev.kimiserve.cuda;

import jcuda.driver.CUfunction;

/**
 * Launchers of the engine's general kernels (src/main/cuda/engine.cu), one method per kernel, arguments in the
 * kernel's order. All launches go on the device's stream and return at once. Shapes are documented in the .cu file.
 */
final class EngineKernels {
    /** Rows a projection block handles at once (GEMV_ROWS in engine.cu). */
    static final int GEMV_ROWS = 8;
    private final CudaDevice device;
    private final CudaModule module;
    private final GemvKernel tiled;
    /** The fp32 GEMV kernel of each projection shape ({@code kimi.cuda.gemv}). */
    private final GemvTilings tilings;
    /**
     * Output columns per block of the fp32 expert GEMVs ({@code kimi.cuda.moe-columns}, a multiple of 16): 32 streams
     * two rounds of 16 per block; 16 makes twice the blocks (at batch 1 the 8 experts' 32-column blocks fill about half
     * of an H100's warp slots). A column's sums are the same either way.
     */
    private final int moeColumns;
    /** From this many rows (below cuBLASLt's) projections and expert GEMVs run on tensor cores ({@link CudaEngine.Options#tcFromRows}). */
    private final int tcFromRows;
    /** Launch each kernel overlapped with the one before it ({@link KernelLaunch}; the kernels wait for their inputs). */
    private final boolean overlap;
    private final CUfunction embedRows, addRmsNorm, swiglu, toBf16, toBf16Split, addHalves, gemv, moeRoute, moeAlign, moeGemv, moeGemv1,
            moeGemvSwiglu, moeGemv1Swiglu, moeCombine, convSilu, kdaPrep, kdaConvPrepDecode, kdaStepDecode, kdaRecurrent, kdaOutNorm, mlaAppend, mlaAbsorbQ,
            mlaAttend, mlaAttendCombine, mlaValue;

    /** The default projection tiling: c1w4 decoded 447.6 tok/s against the warp kernel's 375.0 (H100, 48B --layers 8, batch 1). */
    static final String DEFAULT_GEMV = "c1w4";
    /**
     * The default setting of kimi.cuda.gemv: c1w4, and the tilings that beat it on two 48B shapes as a decode step runs
     * them (overlapped graph chains, H100, m = 1): KDA f/g up [4096, 128] c4w1 1.66 us vs 3.25, shared-expert down
     * [2304, 1024] c2w4 3.13 vs 3.32.
     */
    static final String DEFAULT_TILINGS = DEFAULT_GEMV + ",4096x128:c4w1,2304x1024:c2w4";

    /** Heads per mla_attend block (engine.cu's ATTEND_HEADS): a cache row read once serves them all. */
    static final int ATTEND_HEADS = 4;

    EngineKernels(CudaDevice device, CudaModule module) {
        this(device, module, null, Integer.MAX_VALUE, false);
    }

    /**
     * With {@code gemvModule} (gemv.cu) the {@code kimi.cuda.gemv} tiling can be chosen, and from {@code tcFromRows} rows
     * the tensor-core kernels run; null: engine.cu's kernels only. With {@code overlap} every launch may start while the
     * one before it still runs ({@link KernelLaunch#overlapSupported} must hold).
     */
    EngineKernels(CudaDevice device, CudaModule module, CudaModule gemvModule, int tcFromRows, boolean overlap) {
        this.device = device;
        this.module = module;
        this.overlap = overlap;
        this.tilings = GemvTilings.fromEnvironment(DEFAULT_TILINGS);
        this.moeColumns = moeColumns(System.getProperty("kimi.cuda.moe-columns", System.getenv("KIMI_CUDA_MOE_COLUMNS")));
        this.tiled = gemvModule == null ? null : new GemvKernel(device, gemvModule, overlap);
        this.tcFromRows = tcFromRows > 0 ? tcFromRows : Integer.MAX_VALUE;
        embedRows = fn("embed_rows");
        addRmsNorm = fn("add_rms_norm");
        swiglu = fn("swiglu");
        toBf16 = fn("to_bf16");
        toBf16Split = fn("to_bf16_split");
        addHalves = fn("add_halves");
        gemv = fn("gemv_bf16");
        moeRoute = fn("moe_route");
        moeAlign = fn("moe_align");
        moeGemv = fn("moe_gemv_bf16");
        moeGemv1 = fn("moe_gemv_bf16_r1");
        moeGemvSwiglu = fn("moe_gemv_bf16_swiglu");
        moeGemv1Swiglu = fn("moe_gemv_bf16_r1_swiglu");
        moeCombine = fn("moe_combine");
        convSilu = fn("kda_conv_silu");
        kdaPrep = fn("kda_prep");
        kdaConvPrepDecode = fn("kda_conv_prep_decode");
        kdaStepDecode = fn("kda_step_decode");
        kdaRecurrent = fn("kda_recurrent");
        kdaOutNorm = fn("kda_out_norm");
        mlaAppend = fn("mla_append");
        mlaAbsorbQ = fn("mla_absorb_q");
        mlaAttend = fn("mla_attend");
        mlaAttendCombine = fn("mla_attend_combine");
        mlaValue = fn("mla_value");
    }

    /** Parses {@code kimi.cuda.moe-columns} (null or blank: 32). */
    static int moeColumns(String setting) {
        if (setting == null || setting.isBlank()) {
            return 32;
        }
        try {
            int columns = Integer.parseInt(setting.trim());
            if (columns > 0 && columns % 16 == 0) {
                return columns;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("kimi.cuda.moe-columns / KIMI_CUDA_MOE_COLUMNS must be a positive multiple of 16, got '" + setting + "'");
    }

    void embedRows(int rows, DeviceBuffer table, DeviceBuffer ids, DeviceBuffer out, int dim) {
        launch(embedRows, rows, 1, 1, 256, 0, table, ids, out, dim);
    }

    /** h += delta (delta may be null), y = rmsnorm(h) * w. */
    void addRmsNorm(int rows, DeviceBuffer h, int ldh, DeviceBuffer delta, DeviceBuffer w, DeviceBuffer y, int ldy, int dim, float eps) {
        launch(addRmsNorm, rows, 1, 1, 1024, 0, h, ldh, delta, w, y, ldy, dim, eps);
    }

    void swiglu(int rows, DeviceBuffer gateUp, int ldg, DeviceBuffer out, int ldo, int width) {
        launch(swiglu, rows, (width + 255) / 256, 1, 256, 0, gateUp, ldg, out, ldo, width);
    }

    void toBf16(int rows, DeviceBuffer x, int ldx, DeviceBuffer y, int cols) {
        launch(toBf16, rows, 1, 1, 256, 0, x, ldx, y, cols);
    }

    /** hi = bf16(x), lo = bf16(x - hi), both [rows, cols] contiguous. */
    void toBf16Split(int rows, DeviceBuffer x, int ldx, DeviceBuffer hi, DeviceBuffer lo, int cols) {
        launch(toBf16Split, rows, 1, 1, 256, 0, x, ldx, hi, lo, cols);
    }

    /** y[i] = halves[i] + halves[n + i] for i < n. */
    void addHalves(DeviceBuffer y, DeviceBuffer halves, long n) {
        launch(addHalves, (int) ((n + 255) / 256), 1, 1, 256, 0, y, halves, n);
    }

    /**
     * y[M, N] (+)= x[M, K] · w[N, K]^T with fp32 activations and bf16 weights: engine.cu's warp-per-column kernel, or the
     * gemv.cu tiling named by {@code kimi.cuda.gemv} / {@code KIMI_CUDA_GEMV} where it applies (the choice depends on
     * the shape only, never on M, so a row's result does not depend on the batch); from {@code kimi.cuda.tc-from-rows}
     * rows the tensor-core kernel, whose activations are split into two bf16 parts (about 2^-17 relative error per
     * activation). Within each of these ranges a row's result does not depend on the other rows.
     */
    void gemv(DeviceBuffer x, int ldx, DeviceBuffer w, DeviceBuffer y, int ldy, int m, int n, int k, boolean accumulate) {
        if (tensorCores(m) && GemvKernel.applies(x, ldx, k)) {
            timed("gemv_tc", () -> tiled.launch(GemvKernel.TC, x, ldx, w, y, ldy, m, n, k, accumulate));
            return;
        }
        gemvFp32(x, ldx, w, y, ldy, m, n, k, accumulate);
    }

    /** Whether a launch of this many rows runs on the tensor-core kernels (where the shape allows). */
    boolean tensorCores(int rows) {
        return tiled != null && rows >= tcFromRows;
    }

    /** {@link #gemv} with fp32 activations whatever the rows (the MoE router: expert choices are discontinuous). */
    void gemvFp32(DeviceBuffer x, int ldx, DeviceBuffer w, DeviceBuffer y, int ldy, int m, int n, int k, boolean accumulate) {
        GemvKernel.Variant v = tilings.forShape(n, k);
        if (tiled != null && v != null && GemvKernel.applies(x, ldx, k)) {
            timed("gemv_" + v.name(), () -> tiled.launch(v, x, ldx, w, y, ldy, m, n, k, accumulate));
            return;
        }
        launch(gemv, (n + 7) / 8, (m + GEMV_ROWS - 1) / GEMV_ROWS, 1, 256, 0, x, ldx, w, y, ldy, m, n, k, vec(x, ldx, k) ? 1 : 0,
                accumulate ? 1 : 0);
    }

    /**
     * Whether {@link #gemvSwiglu} takes these rows: the fp32 tiling (not tensor cores) where the shape applies and a
     * block's staged inputs fit.
     */
    boolean swigluOnLoad(DeviceBuffer gateUp, int ldx, int n, int k, int m) {
        return tiled != null && tilings.forShape(n, k) != null && !tensorCores(m) && GemvKernel.applies(gateUp, ldx, k) && ldx >= 2 * k
                && GemvKernel.swigluFits(m, k);
    }

    /** y = x · w^T where x = SwiGLU of gate|up rows ({@code k} each): the down projection without a swiglu launch. */
    void gemvSwiglu(DeviceBuffer gateUp, int ldx, DeviceBuffer w, DeviceBuffer y, int ldy, int m, int n, int k) {
        if (!swigluOnLoad(gateUp, ldx, n, k, m)) {
            throw new IllegalArgumentException("gemv with SwiGLU on load does not take m=" + m + " n=" + n + " k=" + k + " ldx=" + ldx);
        }
        GemvKernel.Variant v = tilings.forShape(n, k);
        timed("gemv_" + v.name() + "_swiglu", () -> tiled.launch(v, gateUp, ldx, w, y, ldy, m, n, k, false, true));
    }

    /**
     * Expert choice per token from its router logits (row t at {@code t * ldl}, the first {@code experts} columns); for one
     * token with {@code oneTokenTiles} non-null (the buffers {@link #moeAlign} writes) it also lays out that token's
     * tiles of one pair, in place of moeAlign.
     */
    void moeRoute(int tokens, DeviceBuffer logits, int ldl, DeviceBuffer bias, int experts, int topk, int groups, int topkGroups,
                  boolean renormalize, boolean biasedWeights, float scaling, DeviceBuffer ids, DeviceBuffer weights,
                  Scratch.Tiles oneTokenTiles) {
        Scratch.Tiles t = oneTokenTiles;
        if (t != null && tokens != 1) {
            throw new IllegalArgumentException("moe_route lays out one-pair tiles for one token only, not " + tokens);
        }
        launch(moeRoute, tokens, 1, 1, Math.min(1024, (experts + 31) / 32 * 32), 8 * (2 * experts + 64), logits, ldl, bias, tokens, experts, topk,
                groups, topkGroups, renormalize ? 1 : 0, biasedWeights ? 1 : 0, scaling, ids, weights, t == null ? null : t.order(),
                t == null ? null : t.tileExpert(), t == null ? null : t.tileCount(), t == null ? null : t.loads());
    }

    /** Pairs grouped by expert into tiles of {@code tileRows} (8 or 16) positions. */
    void moeAlign(DeviceBuffer ids, int pairs, int experts, DeviceBuffer order, DeviceBuffer tileExpert, DeviceBuffer tileCount,
                  DeviceBuffer loads, int tileRows) {
        launch(moeAlign, 1, 1, 1, 1024, 8 * experts, ids, pairs, experts, order, tileExpert, tileCount, loads, tileRows);
    }

    /**
     * Stage 0: gate/up of each pair's token into row p; stage 1: down of row p into the pair's row. From
     * {@code kimi.cuda.tc-from-rows} tokens (as the projections) on tensor cores, else the fp32 kernel.
     */
    void moeGemv(int tokens, int tileRows, int maxTiles, DeviceBuffer x, int ldx, DeviceBuffer order, DeviceBuffer tileExpert,
                 DeviceBuffer tileCount, int topk, int stage, DeviceBuffer w, long expertStride, DeviceBuffer y, int ldy, int n, int k) {
        moeGemv(tokens, tileRows, maxTiles, x, ldx, order, tileExpert, tileCount, topk, stage, w, expertStride, y, ldy, n, k, false);
    }

    /** Whether {@link #moeGemv} can take gate|up rows of {@code k} for this step: the fp32 kernels, a tile's inputs fitting. */
    boolean moeSwigluOnLoad(int tokens, int tileRows, int k) {
        return !tensorCores(tokens) && 4L * tileRows * k <= GemvKernel.STAGE_BYTES;
    }

    /**
     * {@link #moeGemv}; gated ({@link #moeSwigluOnLoad} must hold): x's rows hold gate|up ({@code k} each) and the input
     * is their SwiGLU, staged once per block, so the down projection needs no swiglu launch.
     */
    void moeGemv(int tokens, int tileRows, int maxTiles, DeviceBuffer x, int ldx, DeviceBuffer order, DeviceBuffer tileExpert,
                 DeviceBuffer tileCount, int topk, int stage, DeviceBuffer w, long expertStride, DeviceBuffer y, int ldy, int n, int k,
                 boolean gated) {
        if (gated && !moeSwigluOnLoad(tokens, tileRows, k)) {
            throw new IllegalArgumentException("moe_gemv: SwiGLU on load does not take " + tokens + " tokens in tiles of " + tileRows + ", k=" + k);
        }
        if (tileRows == GEMV_ROWS && tensorCores(tokens) && GemvKernel.applies(x, ldx, k)) {   // as the projections
            timed("moe_gemv_tc", () -> tiled.launchMoe(maxTiles, x, ldx, order, tileExpert, tileCount, topk, stage, w, expertStride, y, ldy, n, k));
            return;
        }
        CUfunction f = gated ? (tileRows == 1 ? moeGemv1Swiglu : moeGemvSwiglu) : tileRows == 1 ? moeGemv1 : moeGemv;
        launch(f, (n + moeColumns - 1) / moeColumns, maxTiles, 1, 256, gated ? 4 * tileRows * k : 0, x, ldx, order, tileExpert, tileCount, topk,
                stage, w, expertStride, y, ldy, n, k, vec(x, ldx, k) ? 1 : 0, moeColumns);
    }

    void moeCombine(int tokens, DeviceBuffer pairOut, DeviceBuffer weights, int topk, DeviceBuffer out, int dim) {
        launch(moeCombine, tokens, (dim + 255) / 256, 1, 256, 0, pairOut, weights, topk, out, dim);
    }

    void convSilu(int segments, DeviceBuffer pre, int ldp, DeviceBuffer taps, DeviceBuffer windows, DeviceBuffer segStart,
                  DeviceBuffer segCount, DeviceBuffer segSlot, DeviceBuffer out, int channels, int width) {
        launch(convSilu, (channels + 127) / 128, segments, 1, 128, 0, pre, ldp, taps, windows, segStart, segCount, segSlot, out, channels,
                width);
    }

    void kdaPrep(int rows, int heads, DeviceBuffer conv, DeviceBuffer gRaw, int ldg, DeviceBuffer betaRaw, int ldb, DeviceBuffer aLog,
                 DeviceBuffer dtBias, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta, int headDim) {
        launch(kdaPrep, rows, heads, 1, 128, 0, conv, gRaw, ldg, betaRaw, ldb, aLog, dtBias, q, k, v, g, beta, heads, headDim);
    }

    /** {@link #convSilu} then {@link #kdaPrep} in one launch, for a decode step (one token per sequence, row = segment). */
    void kdaConvPrepDecode(int rows, int heads, DeviceBuffer pre, int ldp, DeviceBuffer taps, DeviceBuffer windows, DeviceBuffer segSlot,
                           DeviceBuffer gRaw, int ldg, DeviceBuffer betaRaw, int ldb, DeviceBuffer aLog, DeviceBuffer dtBias, DeviceBuffer q,
                           DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta, int headDim, int width) {
        launch(kdaConvPrepDecode, rows, heads, 1, 128, 3 * 4 * headDim, pre, ldp, taps, windows, segSlot, gRaw, ldg, betaRaw, ldb, aLog, dtBias,
                q, k, v, g, beta, heads, headDim, width);
    }

    /**
     * A whole KDA decode step for K = V = 128 ({@link #kdaConvPrepDecode} then kda_decode, the same sums, one launch):
     * conv windows and recurrent state of each row's slot updated in place, o [rows, heads, 128].
     */
    void kdaStepDecode(int rows, int heads, DeviceBuffer pre, int ldp, DeviceBuffer taps, DeviceBuffer windows, DeviceBuffer slots,
                       DeviceBuffer gRaw, int ldg, DeviceBuffer betaRaw, int ldb, DeviceBuffer aLog, DeviceBuffer dtBias, DeviceBuffer states,
                       DeviceBuffer o, int width) {
        launch(kdaStepDecode, heads, rows, 1, 256, 0, pre, ldp, taps, windows, slots, gRaw, ldg, betaRaw, ldb, aLog, dtBias, states, o, heads,
                width);
    }

    void kdaRecurrent(int segments, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                      DeviceBuffer segStart, DeviceBuffer segCount, DeviceBuffer segSlot, DeviceBuffer states, DeviceBuffer o,
                      int keyDim, int valueDim) {
        launch(kdaRecurrent, (valueDim + 31) / 32, heads, segments, 32, 12 * keyDim, q, k, v, g, beta, segStart, segCount, segSlot, states,
                o, heads, keyDim, valueDim);
    }

    void kdaOutNorm(int rows, int heads, DeviceBuffer o, DeviceBuffer gate, int ldg, DeviceBuffer w, DeviceBuffer y, int valueDim, float eps) {
        launch(kdaOutNorm, rows, heads, 1, 128, 0, o, gate, ldg, w, y, heads, valueDim, eps);
    }

    void mlaAppend(int rows, DeviceBuffer kva, int ldk, DeviceBuffer dstRow, DeviceBuffer cache, int latent) {
        launch(mlaAppend, rows, 1, 1, 128, 0, kva, ldk, dstRow, cache, latent);
    }

    void mlaAbsorbQ(int rows, int heads, DeviceBuffer q, int ldq, DeviceBuffer kvB, DeviceBuffer qAbs, int nope, int rope, int vHead, int lora) {
        launch(mlaAbsorbQ, rows, heads, (lora + 63) / 64, 256, 0, q, ldq, kvB, qAbs, heads, nope, rope, vHead, lora);
    }

    /** Attention over the latent cache; {@code splits} > 1 splits each token's positions (one slice per 32, at most that). */
    void mlaAttend(int rows, int heads, DeviceBuffer qAbs, DeviceBuffer cache, DeviceBuffer pageTable, int maxPages, DeviceBuffer tokSeg,
                   DeviceBuffer tokPos, float scale, DeviceBuffer z, int lora, int width, int splits, DeviceBuffer partZ, DeviceBuffer partMl) {
        launch(mlaAttend, rows, (heads + ATTEND_HEADS - 1) / ATTEND_HEADS, splits, 128, 4 * ATTEND_HEADS * width, qAbs, cache, pageTable, maxPages, tokSeg, tokPos, scale, z, heads, lora, width,
                splits, partZ, partMl);
        if (splits > 1) {
            mlaAttendCombine(rows, heads, partZ, partMl, tokPos, splits, z, lora);
        }
    }

    /** z from the slice partials of a split decode attention. */
    void mlaAttendCombine(int rows, int heads, DeviceBuffer partZ, DeviceBuffer partMl, DeviceBuffer tokPos, int splits, DeviceBuffer z, int lora) {
        launch(mlaAttendCombine, rows, heads, 1, 128, 0, partZ, partMl, tokPos, splits, z, heads, lora);
    }

    void mlaValue(int rows, int heads, DeviceBuffer z, DeviceBuffer kvB, DeviceBuffer y, int nope, int vHead, int lora) {
        launch(mlaValue, rows, heads, (vHead + 7) / 8, 256, 0, z, kvB, y, heads, nope, vHead, lora);
    }

    /** 16-byte loads apply: K a multiple of 8, rows 16-byte aligned (the condition of the gemv.cu tilings too). */
    private static boolean vec(DeviceBuffer x, int ldx, int k) {
        return GemvKernel.applies(x, ldx, k);
    }

    /** Per kernel: launches and wall nanoseconds (launch to finish), when profiling. */
    private final java.util.Map<String, long[]> profile = new java.util.HashMap<>();
    private final java.util.Map<CUfunction, String> names = new java.util.IdentityHashMap<>();
    private String phase = "";
    private final boolean profiling = Boolean.getBoolean("kimi.cuda.profile") || "1".equals(System.getenv("KIMI_CUDA_PROFILE"));

    /** The profile table (kernel, launches, total ms, us per launch), empty unless kimi.cuda.profile / KIMI_CUDA_PROFILE=1. */
    String profileTable() {
        StringBuilder sb = new StringBuilder();
        profile.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue()[1], a.getValue()[1])).forEach(e -> sb.append(String.format(
                java.util.Locale.ROOT, "%-24s %8d launches %10.2f ms %8.2f us each%n", e.getKey(), e.getValue()[0],
                e.getValue()[1] / 1e6, e.getValue()[1] / 1e3 / e.getValue()[0])));
        return sb.toString();
    }

    boolean profiling() {
        return profiling;
    }

    /** Labels the following launches in the profile ("prefill", "decode"). */
    void phase(String name) {
        phase = name;
    }

    private void launch(CUfunction f, int gx, int gy, int gz, int threads, int sharedBytes, Object... args) {
        timed(names.get(f), () -> launchNow(f, gx, gy, gz, threads, sharedBytes, args));
    }

    /**
     * Kernels never launched ({@code kimi.cuda.skip-kernels} / {@code KIMI_CUDA_SKIP_KERNELS}, comma-separated names as
     * the profile prints them): a timing diagnostic, how long a decode step takes without them. The results are wrong.
     */
    private final java.util.Set<String> skipped = skippedKernels();

    private static java.util.Set<String> skippedKernels() {
        String v = System.getProperty("kimi.cuda.skip-kernels", System.getenv("KIMI_CUDA_SKIP_KERNELS"));
        if (v == null || v.isBlank()) {
            return java.util.Set.of();
        }
        java.util.Set<String> names = java.util.Set.copyOf(java.util.Arrays.asList(v.trim().split("\\s*,\\s*")));
        System.getLogger(EngineKernels.class.getName()).log(System.Logger.Level.WARNING,
                "kimi.cuda.skip-kernels: never launching " + names + "; every result of this engine is wrong (a timing diagnostic)");
        return names;
    }

    /** Runs {@code work} (launches on the stream); when profiling, waits for it and adds its wall time under {@code name}. */
    void timed(String name, Runnable work) {
        if (skipped.contains(name)) {
            return;
        }
        if (!profiling) {
            work.run();
            return;
        }
        device.synchronize();
        long t0 = System.nanoTime();
        work.run();
        device.synchronize();
        long[] p = profile.computeIfAbsent(phase + " " + name, x -> new long[2]);
        p[0]++;
        p[1] += System.nanoTime() - t0;
    }

    private CUfunction fn(String entry) {
        CUfunction f = module.function(entry);
        names.put(f, entry);
        return f;
    }

    private void launchNow(CUfunction f, int gx, int gy, int gz, int threads, int sharedBytes, Object... args) {
        KernelLaunch.launch(device, f, gx, gy, gz, threads, 1, 1, sharedBytes, overlap, args);
    }
}
