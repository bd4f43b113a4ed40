package dev.kimiserve.core.cpu;


import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.state.MlaCache;
import java.util.Arrays;
import java.util.List;

/**
 * MLA attention over latent caches (spec section 5), fp32:
 * <ul>
 *   <li>{@link #expanded}: causal prefill attention, keys and values expanded from the latents block by block
 *       (256 tokens at a time through kv_b_proj) with an online softmax, so memory stays bounded for any context;</li>
 *   <li>{@link #absorbed}: decode attention with kv_b_proj folded into the query (an MQA over [c | k_pe]), the cache
 *       split into 256-token blocks processed in parallel (flash-decoding) and combined per head.</li>
 * </ul>
 * q is [rows][heads][nope + rope] natural order; o is [rows][heads][v].
 */
final class MlaAttention {
    private static final int KEY_BLOCK = 256;
    private static final int QUERY_BLOCK = 8;
    /** Up to this many cached tokens, decode attention runs per (sequence, head) in a single region. */
    static final int SHORT_CONTEXT = 2048;
    /** The per-(sequence, head) path's limit; tests lower it to exercise the split path on small caches. */
    int shortContext = SHORT_CONTEXT;

    private final MlaConfig cfg;
    private final CpuPool pool;
    private final Matmuls matmuls;
    private final int heads;
    private final int nope;
    private final int rope;
    private final int qk;
    private final int vd;
    private final int lora;
    private final int latent;
    private final float scale;

    // expanded-path buffers
    private float[] cBlock = new float[0];     // [KEY_BLOCK][lora] paired
    private float[] kvBlock = new float[0];    // [KEY_BLOCK][heads][nope + vd]
    private float[] runMax = new float[0];     // [queries][heads]
    private float[] runSum = new float[0];
    private float[] runAcc = new float[0];     // [queries][heads][vd]
    // absorbed-path buffers
    private float[] qAbs = new float[0];       // [B][heads][lora] natural
    private float[] partial = new float[0];    // [items][heads][lora + 2]: z, then max, sum
    private int[] firstItem = new int[1];
    private float[] zPaired = new float[0];    // [B][heads][lora] paired
    private float[] oCompact = new float[0];   // [B][heads][vd]
    private final MatmulJob[] vJobs;
    private final MatmulJob expandJob = new MatmulJob();
    private final ThreadLocal<float[]> rowScratch;

    MlaAttention(MlaConfig cfg, CpuPool pool, Matmuls matmuls) {
        this.cfg = cfg;
        this.pool = pool;
        this.matmuls = matmuls;
        this.heads = cfg.numHeads();
        this.nope = cfg.qkNopeHeadDim();
        this.rope = cfg.qkRopeHeadDim();
        this.qk = cfg.qkHeadDim();
        this.vd = cfg.vHeadDim();
        this.lora = cfg.kvLoraRank();
        this.latent = cfg.latentSize();
        this.scale = (float) cfg.softmaxScale();
        this.vJobs = new MatmulJob[heads];
        for (int h = 0; h < heads; h++) {
            vJobs[h] = new MatmulJob();
        }
        int scratch = Math.max(KEY_BLOCK, lora);
        this.rowScratch = ThreadLocal.withInitial(() -> new float[scratch]);
    }

    /**
     * Causal attention of query rows [row0, row0 + count) at positions past .. past+count-1 over the cache (which
     * already holds those rows' latents).
     *
     * @param kvB kv_b_proj [heads*(nope+vd), lora]
     */
    void expanded(WeightMatrix kvB, MlaCache cache, float[] q, int row0, int count, int past, float[] o) {
        int total = past + count;
        int kvw = heads * (nope + vd);
        cBlock = grow(cBlock, KEY_BLOCK * lora);
        kvBlock = grow(kvBlock, KEY_BLOCK * kvw);
        runMax = grow(runMax, count * heads);
        runSum = grow(runSum, count * heads);
        runAcc = grow(runAcc, count * heads * vd);
        Arrays.fill(runMax, 0, count * heads, Float.NEGATIVE_INFINITY);
        Arrays.fill(runSum, 0, count * heads, 0f);
        Arrays.fill(runAcc, 0, count * heads * vd, 0f);
        for (int s0 = 0; s0 < total; s0 += KEY_BLOCK) {
            int s1 = Math.min(total, s0 + KEY_BLOCK);
            for (int s = s0; s < s1; s++) {
                Vec.pairOrder(cache.page(s), cache.offsetInPage(s), lora, cBlock, (s - s0) * lora);
            }
            matmuls.run(expandJob.set(kvB, cBlock, 0, lora, s1 - s0, kvBlock, 0, kvw));      // kv_b_proj(c) = [k_nope | v]
            int keyStart = s0;
            int keyEnd = s1;
            int qBlocks = (count + QUERY_BLOCK - 1) / QUERY_BLOCK;
            pool.forRange(heads * qBlocks, 1, (from, to) -> {
                for (int item = from; item < to; item++) {
                    int h = item / qBlocks;
                    int t0 = (item % qBlocks) * QUERY_BLOCK;
                    for (int t = t0; t < Math.min(count, t0 + QUERY_BLOCK); t++) {
                        int visible = Math.min(keyEnd, past + t + 1);
                        if (visible > keyStart) {
                            attendBlock(cache, q, row0 + t, h, keyStart, visible, t);
                        }
                    }
                }
            });
        }
        for (int t = 0; t < count; t++) {
            for (int h = 0; h < heads; h++) {
                float inv = 1f / runSum[t * heads + h];
                int ob = ((row0 + t) * heads + h) * vd;
                int ab = (t * heads + h) * vd;
                for (int j = 0; j < vd; j++) {
                    o[ob + j] = runAcc[ab + j] * inv;
                }
            }
        }
    }

    /** Online-softmax update of query t, head h over keys [s0, s1) of the current expanded block. */
    private void attendBlock(MlaCache cache, float[] q, int row, int h, int s0, int s1, int t) {
        float[] scores = rowScratch.get();
        int kvw = heads * (nope + vd);
        int qb = (row * heads + h) * qk;
        int blockBase = s0 / KEY_BLOCK * KEY_BLOCK;
        float max = Float.NEGATIVE_INFINITY;
        for (int s = s0; s < s1; s++) {
            int kb = (s - blockBase) * kvw + h * (nope + vd);
            float dot = Vec.dot(q, qb, kvBlock, kb, nope)
                    + Vec.dot(q, qb + nope, cache.page(s), cache.offsetInPage(s) + lora, rope);
            scores[s - s0] = dot * scale;
            max = Math.max(max, scores[s - s0]);
        }
        int st = t * heads + h;
        float newMax = Math.max(runMax[st], max);
        float correction = (float) Math.exp(runMax[st] - newMax);
        int ab = st * vd;
        Vec.scale(runAcc, ab, vd, correction);
        float sum = runSum[st] * correction;
        for (int s = s0; s < s1; s++) {
            float p = (float) Math.exp(scores[s - s0] - newMax);
            sum += p;
            Vec.axpy(p, kvBlock, (s - blockBase) * kvw + h * (nope + vd) + nope, runAcc, ab, vd);
        }
        runSum[st] = sum;
        runMax[st] = newMax;
    }

    /**
     * Decode attention for single-row segments.
     *
     * @param kvBk per head, the kv_b_proj rows producing k_nope [nope, lora]
     * @param kvBv per head, the kv_b_proj rows producing v [vd, lora]
     */
    void absorbed(WeightMatrix[] kvBk, WeightMatrix[] kvBv, List<Segment> segments, int layer, float[] q, float[] o) {
        // each sequence's path depends on its own length only, so its numbers never depend on who shares the batch
        List<Segment> shortOnes = new java.util.ArrayList<>();
        List<Segment> longOnes = new java.util.ArrayList<>();
        for (Segment seg : segments) {
            (seg.state().mla(layer).length() <= shortContext ? shortOnes : longOnes).add(seg);
        }
        if (!shortOnes.isEmpty()) {
            pool.forRange(shortOnes.size() * heads, 1, (from, to) -> {
                for (int item = from; item < to; item++) {
                    Segment seg = shortOnes.get(item / heads);
                    absorbedHead(kvBk[item % heads], kvBv[item % heads], seg.state().mla(layer), q, seg.start(), item % heads, o);
                }
            });
        }
        if (!longOnes.isEmpty()) {
            absorbedSplit(kvBk, kvBv, longOnes, layer, q, o);
        }
    }

    /** Flash-decoding: every cache split into blocks processed in parallel, then combined per head. */
    private void absorbedSplit(WeightMatrix[] kvBk, WeightMatrix[] kvBv, List<Segment> segments, int layer, float[] q, float[] o) {
        int b = segments.size();
        qAbs = grow(qAbs, b * heads * lora);
        // q~ = Wk_h^T q_nope, weights of a head read once for all sequences
        pool.forRange(heads, 1, (from, to) -> {
            float[] acc = rowScratch.get();
            for (int h = from; h < to; h++) {
                for (int i = 0; i < b; i++) {
                    int qb = (segments.get(i).start() * heads + h) * qk;
                    Arrays.fill(acc, 0, lora, 0f);
                    for (int n = 0; n < nope; n++) {
                        MatmulKernels.accumulateRow(kvBk[h], n, q[qb + n], acc, 0);
                    }
                    Vec.naturalOrder(acc, 0, lora, qAbs, (i * heads + h) * lora);
                }
            }
        });
        if (firstItem.length < b + 1) {
            firstItem = new int[b + 1];
        }
        int items = 0;
        for (int i = 0; i < b; i++) {
            firstItem[i] = items;
            items += (segments.get(i).state().mla(layer).length() + KEY_BLOCK - 1) / KEY_BLOCK;
        }
        firstItem[b] = items;
        int stride = lora + 2;
        partial = grow(partial, items * heads * stride);
        pool.forRange(items, 1, (from, to) -> {
            int i = 0;
            for (int item = from; item < to; item++) {
                while (firstItem[i + 1] <= item) {
                    i++;
                }
                MlaCache cache = segments.get(i).state().mla(layer);
                int s0 = (item - firstItem[i]) * KEY_BLOCK;
                int s1 = Math.min(cache.length(), s0 + KEY_BLOCK);
                decodeBlock(cache, q, segments.get(i).start(), i, s0, s1, item * heads * stride);
            }
        });
        // combine the blocks of each sequence and head, then o_h = Wv_h z_h
        zPaired = grow(zPaired, b * heads * lora);
        float[] z = rowScratch.get();
        for (int i = 0; i < b; i++) {
            for (int h = 0; h < heads; h++) {
                float max = Float.NEGATIVE_INFINITY;
                for (int item = firstItem[i]; item < firstItem[i + 1]; item++) {
                    max = Math.max(max, partial[(item * heads + h) * stride + lora]);
                }
                Arrays.fill(z, 0, lora, 0f);
                float sum = 0f;
                for (int item = firstItem[i]; item < firstItem[i + 1]; item++) {
                    int pb = (item * heads + h) * stride;
                    float w = (float) Math.exp(partial[pb + lora] - max);
                    sum += w * partial[pb + lora + 1];
                    Vec.axpy(w, partial, pb, z, 0, lora);
                }
                Vec.scale(z, 0, lora, 1f / sum);
                Vec.pairOrder(z, 0, lora, zPaired, (i * heads + h) * lora);
            }
        }
        oCompact = grow(oCompact, b * heads * vd);
        for (int h = 0; h < heads; h++) {
            vJobs[h].set(kvBv[h], zPaired, h * lora, heads * lora, b, oCompact, h * vd, heads * vd);
        }
        matmuls.run(vJobs, heads);
        for (int i = 0; i < b; i++) {
            System.arraycopy(oCompact, i * heads * vd, o, segments.get(i).start() * heads * vd, heads * vd);
        }
    }

    /**
     * One (sequence, head) of decode attention in one go, for caches short enough that re-reading them per head is
     * cheaper than another parallel region: q~ = Wk_h^T q_nope, softmax over the cache, z = sum p c, o_h = Wv_h z.
     */
    private void absorbedHead(WeightMatrix wk, WeightMatrix wv, MlaCache cache, float[] q, int row, int h, float[] o) {
        HeadScratch hs = headScratch.get();
        int qb = (row * heads + h) * qk;
        Arrays.fill(hs.acc, 0, lora, 0f);
        for (int n = 0; n < nope; n++) {
            MatmulKernels.accumulateRow(wk, n, q[qb + n], hs.acc, 0);
        }
        Vec.naturalOrder(hs.acc, 0, lora, hs.qAbs, 0);
        int len = cache.length();
        float max = Float.NEGATIVE_INFINITY;
        for (int s = 0; s < len; s++) {
            float[] page = cache.page(s);
            int off = cache.offsetInPage(s);
            hs.scores[s] = (Vec.dot(hs.qAbs, 0, page, off, lora) + Vec.dot(q, qb + nope, page, off + lora, rope)) * scale;
            max = Math.max(max, hs.scores[s]);
        }
        float sum = 0f;
        Arrays.fill(hs.acc, 0, lora, 0f);
        for (int s = 0; s < len; s++) {
            float p = (float) Math.exp(hs.scores[s] - max);
            sum += p;
            Vec.axpy(p, cache.page(s), cache.offsetInPage(s), hs.acc, 0, lora);
        }
        Vec.scale(hs.acc, 0, lora, 1f / sum);
        Vec.pairOrder(hs.acc, 0, lora, hs.qAbs, 0);
        float[] dots = MatmulKernels.results();
        int ob = (row * heads + h) * vd;
        int j = 0;
        for (; j + 4 <= vd; j += 4) {
            MatmulKernels.dot4x1(wv, j, wv, j + 1, wv, j + 2, wv, j + 3, hs.qAbs, 0, dots);
            System.arraycopy(dots, 0, o, ob + j, 4);
        }
        for (; j < vd; j++) {
            o[ob + j] = MatmulKernels.dot1(wv, j, hs.qAbs, 0);
        }
    }

    /** Per-thread buffers of {@link #absorbedHead}. */
    private final class HeadScratch {
        final float[] acc = new float[lora];
        final float[] qAbs = new float[lora];
        final float[] scores = new float[SHORT_CONTEXT];
    }

    private final ThreadLocal<HeadScratch> headScratch = ThreadLocal.withInitial(HeadScratch::new);

    /** Partial softmax over cache tokens [s0, s1) for every head: z = sum p c, max, sum (online, token-major). */
    private void decodeBlock(MlaCache cache, float[] q, int row, int seqIndex, int s0, int s1, int pb) {
        int stride = lora + 2;
        for (int h = 0; h < heads; h++) {
            int base = pb + h * stride;
            Arrays.fill(partial, base, base + lora, 0f);
            partial[base + lora] = Float.NEGATIVE_INFINITY;
            partial[base + lora + 1] = 0f;
        }
        for (int s = s0; s < s1; s++) {
            float[] page = cache.page(s);
            int off = cache.offsetInPage(s);
            for (int h = 0; h < heads; h++) {
                int base = pb + h * stride;
                float score = (Vec.dot(qAbs, (seqIndex * heads + h) * lora, page, off, lora)
                        + Vec.dot(q, (row * heads + h) * qk + nope, page, off + lora, rope)) * scale;
                float max = partial[base + lora];
                if (score > max) {
                    float c = (float) Math.exp(max - score);
                    Vec.scale(partial, base, lora, c);
                    partial[base + lora + 1] *= c;
                    partial[base + lora] = score;
                    max = score;
                }
                float p = (float) Math.exp(score - max);
                partial[base + lora + 1] += p;
                Vec.axpy(p, page, off, partial, base, lora);
            }
        }
    }

    private static float[] grow(float[] a, int n) {
        return a.length >= n ? a : new float[Math.max(n, a.length + a.length / 2)];
    }

}
