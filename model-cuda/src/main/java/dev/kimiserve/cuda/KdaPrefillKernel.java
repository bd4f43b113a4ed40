package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;

import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * Launches the chunked KDA prefill (src/main/cuda/kda_prefill.cu) over a varlen batch: {@code kda_chunk_intra} for
 * every 64-token chunk of every sequence at once (exact pairwise decays, the triangular inverse), then
 * {@code kda_chunk_sweep} over each sequence's chunks in order, a block per (sequence, head, 32-column state tile).
 * K = V = 128. The state of each sequence starts from and returns to its pool slot, so a prompt can be prefilled in
 * several calls.
 *
 * <pre>
 * q, k, g  [T, H, 128] fp32   rows of all sequences back to back (q L2-normed and scaled, k L2-normed, g log decay)
 * v        [T, H, 128] fp32
 * beta     [T, H]      fp32
 * states   [slots, H, 128, 128] fp32, slots [B] int32
 * out      [T, H, 128] fp32
 * </pre>
 */
public final class KdaPrefillKernel {
    public static final int HEAD_DIM = 128;
    public static final int CHUNK = 64;
    private static final int R = HEAD_DIM + 1;
    private static final int INTRA_SHARED = 4 * 3 * CHUNK * R;
    /** kda_chunk_intra_sub: q, k, G and the three anchors' scaled k rows (96). */
    private static final int INTRA_SUB_SHARED = 4 * (3 * CHUNK + 96) * R;
    /** The setting that picks the intra-chunk kernel: {@code exact} (every pair's decays) or {@code sub} (16-row sub-chunks). */
    static final String INTRA_SETTING = "kimi.cuda.kda-intra";
    private static final int SWEEP_SHARED = 4 * (HEAD_DIM * 32 + 3 * CHUNK * 132 + CHUNK * (CHUNK + 1) + 2 * CHUNK * 36 + 2 * HEAD_DIM + CHUNK);
    /** kda_chunk_sweep_tc: the same arrays with padded strides (state 40, T/Aqk 68, N/rhs 40). */
    private static final int SWEEP_TC_SHARED = 4 * (HEAD_DIM * 40 + 3 * CHUNK * 132 + CHUNK * 68 + 2 * CHUNK * 40 + 2 * HEAD_DIM + CHUNK);
    /** The setting that picks the sweep: {@code fp32} (CUDA cores) or {@code tc} (tensor cores, 3xTF32). */
    static final String SWEEP_SETTING = "kimi.cuda.kda-sweep";
    private final CudaDevice device;
    private final CUfunction intra;
    private final int intraShared;
    private final CUfunction sweep;
    private final int sweepShared;

    /** The chunk bookkeeping of one batch of sequence lengths, on the device. */
    public static final class Plan implements AutoCloseable {
        final int batch;
        final int tokens;
        final int chunks;
        final DeviceBuffer seqStart;
        final DeviceBuffer chunkSeq;
        final DeviceBuffer chunkFirst;
        final DeviceBuffer seqChunk0;

        public Plan(CudaDevice device, int[] lengths) {
            batch = lengths.length;
            int[] start = new int[batch + 1];
            int[] chunk0 = new int[batch];
            int count = 0;
            for (int b = 0; b < batch; b++) {
                if (lengths[b] <= 0) {
                    throw new IllegalArgumentException("kda prefill: sequence " + b + " has " + lengths[b] + " tokens");
                }
                start[b + 1] = start[b] + lengths[b];
                chunk0[b] = count;
                count += (lengths[b] + CHUNK - 1) / CHUNK;
            }
            int[] seq = new int[count];
            int[] first = new int[count];
            for (int b = 0; b < batch; b++) {
                for (int c = 0; c * CHUNK < lengths[b]; c++) {
                    seq[chunk0[b] + c] = b;
                    first[chunk0[b] + c] = start[b] + c * CHUNK;
                }
            }
            tokens = start[batch];
            chunks = count;
            seqStart = DeviceBuffer.of(device, start);
            chunkSeq = DeviceBuffer.of(device, seq);
            chunkFirst = DeviceBuffer.of(device, first);
            seqChunk0 = DeviceBuffer.of(device, chunk0);
        }

        public int chunks() {
            return chunks;
        }

        public int tokens() {
            return tokens;
        }

        @Override
        public void close() {
            seqStart.close();
            chunkSeq.close();
            chunkFirst.close();
            seqChunk0.close();
        }
    }

    /**
     * With the kernels named by {@code kimi.cuda.kda-intra} / {@code KIMI_CUDA_KDA_INTRA} (exact by default) and
     * {@code kimi.cuda.kda-sweep} / {@code KIMI_CUDA_KDA_SWEEP} (fp32 by default).
     */
    public KdaPrefillKernel(CudaDevice device, CudaModule module) {
        this(device, module, choice(INTRA_SETTING, "KIMI_CUDA_KDA_INTRA", "exact", "sub"), choice(SWEEP_SETTING, "KIMI_CUDA_KDA_SWEEP", "fp32", "tc"));
    }

    /**
     * @param subChunks         kda_chunk_intra_sub (exact decays inside 16-row sub-chunks, anchored products across)
     * @param tensorCoreSweep   kda_chunk_sweep_tc (the sweep's products on tensor cores, 3xTF32)
     */
    public KdaPrefillKernel(CudaDevice device, CudaModule module, boolean subChunks, boolean tensorCoreSweep) {
        this.device = device;
        this.intra = module.function(subChunks ? "kda_chunk_intra_sub" : "kda_chunk_intra");
        this.intraShared = subChunks ? INTRA_SUB_SHARED : INTRA_SHARED;
        this.sweep = module.function(tensorCoreSweep ? "kda_chunk_sweep_tc" : "kda_chunk_sweep");
        this.sweepShared = tensorCoreSweep ? SWEEP_TC_SHARED : SWEEP_SHARED;
        device.makeCurrent();
        cuFuncSetAttribute(intra, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, intraShared);
        cuFuncSetAttribute(sweep, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sweepShared);
    }

    /** Whether a two-way setting names its {@code other} choice (unset or blank: the {@code usual} one). */
    private static boolean choice(String property, String env, String usual, String other) {
        String v = System.getProperty(property, System.getenv(env));
        if (v == null || v.isBlank() || v.trim().equals(usual)) {
            return false;
        }
        if (v.trim().equals(other)) {
            return true;
        }
        throw new IllegalArgumentException(property + " / " + env + " must be " + usual + " or " + other + ", got '" + v + "'");
    }

    /** Scratch bytes for a plan: T and Aqk of every chunk and head. */
    public static long scratchBytes(Plan plan, int heads) {
        return 4L * plan.chunks * heads * 2 * CHUNK * CHUNK;
    }

    public void launch(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                       DeviceBuffer slots, DeviceBuffer states, DeviceBuffer scratch, DeviceBuffer out) {
        if (heads <= 0 || heads > 65535 || plan.batch > 65535) {
            throw new IllegalArgumentException("kda prefill: heads " + heads + ", batch " + plan.batch);
        }
        long rows = 4L * plan.tokens * heads * HEAD_DIM;
        q.require("kda prefill", "q", rows);
        k.require("kda prefill", "k", rows);
        v.require("kda prefill", "v", rows);
        g.require("kda prefill", "g", rows);
        out.require("kda prefill", "out", rows);
        beta.require("kda prefill", "beta", 4L * plan.tokens * heads);
        slots.require("kda prefill", "slots", 4L * plan.batch);
        scratch.require("kda prefill", "scratch", scratchBytes(plan, heads));
        launchIntra(plan, heads, q, k, g, beta, scratch);
        launchSweep(plan, heads, q, k, v, g, beta, slots, states, scratch, out);
    }

    /** The first kernel alone (every chunk's T and Aqk); {@link #launch} runs both. */
    void launchIntra(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer g, DeviceBuffer beta, DeviceBuffer scratch) {
        device.makeCurrent();
        cuLaunchKernel(intra, plan.chunks, heads, 1, 256, 1, 1, intraShared, device.stream(),
                Pointer.to(Pointer.to(q.pointer()), Pointer.to(k.pointer()), Pointer.to(g.pointer()), Pointer.to(beta.pointer()),
                        Pointer.to(plan.chunkSeq.pointer()), Pointer.to(plan.chunkFirst.pointer()), Pointer.to(plan.seqStart.pointer()),
                        Pointer.to(new int[]{heads}), Pointer.to(scratch.pointer())), null);
    }

    /** The second kernel alone (the sequential sweep), after {@link #launchIntra} filled the scratch. */
    void launchSweep(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                     DeviceBuffer slots, DeviceBuffer states, DeviceBuffer scratch, DeviceBuffer out) {
        device.makeCurrent();
        cuLaunchKernel(sweep, HEAD_DIM / 32, heads, plan.batch, 256, 1, 1, sweepShared, device.stream(),
                Pointer.to(Pointer.to(q.pointer()), Pointer.to(k.pointer()), Pointer.to(v.pointer()), Pointer.to(g.pointer()),
                        Pointer.to(beta.pointer()), Pointer.to(plan.seqStart.pointer()), Pointer.to(plan.seqChunk0.pointer()),
                        Pointer.to(scratch.pointer()), Pointer.to(slots.pointer()), Pointer.to(states.pointer()), Pointer.to(out.pointer()),
                        Pointer.to(new int[]{heads})), null);
    }

}
