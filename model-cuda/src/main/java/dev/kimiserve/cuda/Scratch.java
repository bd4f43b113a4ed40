package dev.kimiserve.cuda;

import dev.kimiserve.core.config.KimiLinearConfig;

/**
 * The CUDA engine's activations for a forward pass of up to {@code rows} rows, carved out of one allocation made when
 * the engine is built (so a decode step allocates nothing). Shapes in rows R; C = KDA channels, D = hidden size.
 */
final class Scratch implements AutoCloseable {
    /** Most slices a decode token's attention is split into (one per 32 cached positions). */
    static final int ATTEND_SPLITS = 16;
    private final DeviceBuffer arena;
    private long used;
    /** [R, D]: the residual stream, the normed block input, the block output. */
    final DeviceBuffer h, normed, mixed;
    /** [R, widest stacked projection] (also the router logits with the shared expert's gate|up). */
    final DeviceBuffer proj;
    /** [R, MLP width]. */
    final DeviceBuffer act;
    /** KDA: conv [R, 3C]; q, k, v, g, gate, outGate [R, C]; beta [R, H]. */
    final DeviceBuffer conv, q, k, v, g, gate, outGate, beta;
    /** [R, max(C, q LoRA rank)]: the KDA output after its norm, or MLA's normed q_a. */
    final DeviceBuffer y;
    /** [R, max(C, H * v_head)]: the KDA core output, or MLA's attention output. */
    final DeviceBuffer o;
    /** MLA: queries from q_b [R, H * Q], absorbed queries [R, H, L + P], attention over latents [R, H, L]. */
    final DeviceBuffer qMla, qAbs, z;
    /** MoE: router logits [R, E], choices [R, k] (int, fp32), grouping, per-position hidden rows, per-pair outputs [R*k, D]. */
    final DeviceBuffer routerLogits, expertIds, expertWeights, order, tileExpert, tileCount, expertHidden, expertAct, pairOut;
    /** lm_head output [logit rows, vocab]. */
    final DeviceBuffer logits;
    /** MLA decode: per-slice attention sums [logit rows, H, splits, L] and (max, weight sum) [logit rows, H, splits, 2]. */
    final DeviceBuffer attendZ, attendMl;
    /** MoE: distinct experts used, summed over layers and passes (one unsigned 64-bit counter). */
    final DeviceBuffer expertLoads;
    /** The grouping's outputs: pair order by position, expert per tile, tiles used, and the distinct-expert counter. */
    record Tiles(DeviceBuffer order, DeviceBuffer tileExpert, DeviceBuffer tileCount, DeviceBuffer loads) {
    }

    final Tiles tiles;
    /** bf16 parts of a projection input for cuBLASLt, [2R, widest input] (the high rows, then the low rows), and their product [2R, out]. */
    final DeviceBuffer bf16, splitProduct;

    Scratch(CudaDevice device, KimiLinearConfig cfg, int rows, int logitRows) {
        long r = rows;
        int d = cfg.hiddenSize();
        int c = cfg.kda() == null ? 0 : cfg.kda().projectionSize();
        int kdaHeads = cfg.kda() == null ? 0 : cfg.kda().numHeads();
        int kdaIn = cfg.kda() == null ? 0 : 3 * c + 2 * cfg.kda().headDim() + kdaHeads;
        var mla = cfg.mla();
        int qLora = mla == null ? 0 : mla.qLoraRank();
        int mlaIn = mla == null ? 0 : (qLora > 0 ? qLora : mla.numHeads() * mla.qkHeadDim()) + mla.latentSize();
        int mlaOut = mla == null ? 0 : mla.numHeads() * mla.vHeadDim();
        var moe = cfg.moe();
        int width = Math.max(cfg.intermediateSize(), moe == null ? 0 : Math.max(moe.intermediateSize(), moe.sharedIntermediateSize()));
        int routerAndShared = moe == null ? 0 : moe.numExperts() + 2 * moe.sharedIntermediateSize();   // one GEMV's output (CudaEngine.moe)
        int widest = max(kdaIn, mlaIn, 2 * width, routerAndShared, 1);
        int topk = moe == null ? 0 : moe.expertsPerToken();
        long pairs = r * topk;
        // pair positions after grouping into tiles of 8 (padding up to 7 per expert; tiles of 1 need fewer)
        long positions = moe == null ? 0 : (pairs / EngineKernels.GEMV_ROWS + Math.min(pairs, moe.numExperts())) * EngineKernels.GEMV_ROWS;
        int widestIn = max(d, c, qLora, mlaOut, width, cfg.kda() == null ? 0 : cfg.kda().headDim());
        long[] sizes = {
                r * d, r * d, r * d, r * widest, r * width,
                r * 3 * c, r * c, r * c, r * c, r * c, r * c, r * c, r * kdaHeads,
                r * Math.max(c, qLora), r * Math.max(c, mlaOut),
                mla == null ? 0 : r * mla.numHeads() * mla.qkHeadDim(), mla == null ? 0 : r * mla.numHeads() * mla.latentSize(), mla == null ? 0 : r * mla.numHeads() * mla.kvLoraRank(),
                moe == null ? 0 : r * moe.numExperts(), pairs, pairs, positions, positions / EngineKernels.GEMV_ROWS, 1,
                positions * 2 * width, positions * width, pairs * d,
                (long) logitRows * cfg.vocabSize(), r * widestIn,
                2 * Math.max(r * max(widest, d, c, mla == null ? 0 : mla.numHeads() * mla.qkHeadDim()), (long) logitRows * cfg.vocabSize()), 2,
                mla == null ? 0 : (long) logitRows * mla.numHeads() * ATTEND_SPLITS * mla.kvLoraRank(),
                mla == null ? 0 : (long) logitRows * mla.numHeads() * ATTEND_SPLITS * 2};
        long total = 0;
        for (long n : sizes) {
            total += align(4 * Math.max(n, 1));
        }
        arena = DeviceBuffer.allocate(device, total);
        arena.fill(Float.NaN);                                         // poisoned: a kernel that reads what nobody wrote shows NaN
        h = take(sizes[0]);
        normed = take(sizes[1]);
        mixed = take(sizes[2]);
        proj = take(sizes[3]);
        act = take(sizes[4]);
        conv = take(sizes[5]);
        q = take(sizes[6]);
        k = take(sizes[7]);
        v = take(sizes[8]);
        g = take(sizes[9]);
        gate = take(sizes[10]);
        outGate = take(sizes[11]);
        beta = take(sizes[12]);
        y = take(sizes[13]);
        o = take(sizes[14]);
        qMla = take(sizes[15]);
        qAbs = take(sizes[16]);
        z = take(sizes[17]);
        routerLogits = take(sizes[18]);
        expertIds = take(sizes[19]);
        expertWeights = take(sizes[20]);
        order = take(sizes[21]);
        tileExpert = take(sizes[22]);
        tileCount = take(sizes[23]);
        expertHidden = take(sizes[24]);
        expertAct = take(sizes[25]);
        pairOut = take(sizes[26]);
        logits = take(sizes[27]);
        bf16 = take(sizes[28]);
        splitProduct = take(sizes[29]);
        expertLoads = take(sizes[30]);
        expertLoads.fill(0f);
        attendZ = take(sizes[31]);
        attendMl = take(sizes[32]);
        tiles = new Tiles(order, tileExpert, tileCount, expertLoads);
    }

    private static int max(int... values) {
        int m = 1;
        for (int v : values) {
            m = Math.max(m, v);
        }
        return m;
    }

    private static long align(long bytes) {
        return (bytes + 255) / 256 * 256;
    }

    /** The next {@code floats} 4-byte words of the arena (at least one), 256-byte aligned. */
    private DeviceBuffer take(long floats) {
        long bytes = align(4 * Math.max(floats, 1));
        DeviceBuffer b = arena.slice(used, bytes);
        used += bytes;
        return b;
    }

    @Override
    public void close() {
        arena.close();
    }
}
