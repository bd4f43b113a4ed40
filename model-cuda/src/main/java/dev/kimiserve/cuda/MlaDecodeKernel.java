package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;

import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUfunction;

/**
 * Launches the weight-absorbed MLA decode attention (src/main/cuda/mla_decode.cu): for each sequence, each of its 32
 * heads attends over the sequence's cached latents [c | k_pe] (576 bf16 per token, read once for all heads) and
 * gets z = softmax(q~ . cache) . c (512 fp32). The cache is paged in pages of 64 tokens. The chunks (pages) of all
 * sequences are spread evenly over {@code splits} blocks (stream-K: a block's share may cross sequences, so every SM
 * gets the same work whatever the batch), and a second kernel merges each sequence's slices.
 *
 * <pre>
 * q      [B, 32, 576] bf16   absorbed queries (W_k^T q_nope | q_pe), already scaled by 1/sqrt(192)
 * cache  [rows, 576]  bf16   the latent pool; token t of sequence b is row pages[b][t / 64] * 64 + t % 64
 * pages  [B, maxPages] int32
 * lens   [B] int32           cached tokens per sequence (at least 1)
 * z      [B, 32, 512] fp32
 * </pre>
 */
public final class MlaDecodeKernel {
    public static final int HEADS = 32;
    public static final int WIDTH = 576;
    public static final int LATENT = 512;
    public static final int PAGE = 64;
    private static final int CHUNK = 64;
    /** The combine kernel keeps one weight per slice in shared memory. */
    static final int MAX_SPLITS = 1024;
    /** The combine kernel runs a block per (sequence, head, quarter of the 512 columns). */
    private static final int COMBINE_PARTS = 4;
    private static final int THREADS = 512;
    /** Queries and two chunks of latents (bf16, rows of 584), four k quarters of scores, probabilities, m, l, alpha. */
    private static final int SHARED_BYTES = 2 * (HEADS + 2 * CHUNK) * (WIDTH + 8) + 4 * 4 * HEADS * (CHUNK + 4) + 2 * HEADS * (CHUNK + 8)
            + 4 * 3 * HEADS;
    private final CudaDevice device;
    private final CUfunction split;
    private final CUfunction combine;

    public MlaDecodeKernel(CudaDevice device, CudaModule module) {
        this.device = device;
        this.split = module.function("mla_decode_split");
        this.combine = module.function("mla_decode_combine");
        device.makeCurrent();
        cuFuncSetAttribute(split, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, SHARED_BYTES);
    }

    /** Blocks: one per SM (one fits, by shared memory), never more than the chunks there can be. */
    public int splitsFor(int batch, int maxLen) {
        long chunks = (long) batch * ((maxLen + CHUNK - 1) / CHUNK);
        return (int) Math.max(1, Math.min(device.multiprocessors(), chunks));
    }

    /** Bytes of scratch a launch needs for {@code splits} blocks over {@code batch} sequences: G + B slots and the chunk starts. */
    public static long workspaceBytes(int batch, int splits) {
        return 4L * (splits + batch) * HEADS * (LATENT + 2) + 4L * (batch + 1);
    }

    public void launch(int batch, DeviceBuffer q, DeviceBuffer cache, DeviceBuffer pages, int maxPages, DeviceBuffer lens,
                       int splits, DeviceBuffer workspace, DeviceBuffer z) {
        if (batch <= 0 || batch > 65535 || splits <= 0 || splits > MAX_SPLITS || maxPages <= 0) {
            throw new IllegalArgumentException("mla_decode: batch " + batch + ", splits " + splits + ", maxPages " + maxPages);
        }
        q.require("mla_decode", "q", 2L * batch * HEADS * WIDTH);
        pages.require("mla_decode", "pages", 4L * batch * maxPages);
        lens.require("mla_decode", "lens", 4L * batch);
        workspace.require("mla_decode", "workspace", workspaceBytes(batch, splits));
        z.require("mla_decode", "z", 4L * batch * HEADS * LATENT);
        long slots = (long) splits + batch;
        long zBytes = 4L * slots * HEADS * LATENT;
        DeviceBuffer partZ = workspace.slice(0, zBytes);
        DeviceBuffer partM = workspace.slice(zBytes, 4L * slots * HEADS);
        DeviceBuffer partL = workspace.slice(zBytes + 4L * slots * HEADS, 4L * slots * HEADS);
        DeviceBuffer chunkStart = workspace.slice(zBytes + 8L * slots * HEADS, 4L * (batch + 1));
        device.makeCurrent();
        KernelLaunch.launch(device, split, splits, 1, 1, THREADS, 1, 1, SHARED_BYTES, false, q, cache, pages, maxPages, lens, batch,
                partZ, partM, partL, chunkStart);
        // eight warps over the slices when a sequence has many (few sequences over every SM), four when few
        int combineThreads = splits / batch >= 16 ? 256 : 128;
        KernelLaunch.launch(device, combine, HEADS * COMBINE_PARTS, batch, 1, combineThreads, 1, 1, 0, false, partZ, partM, partL,
                chunkStart, batch, splits, z);
    }

}
