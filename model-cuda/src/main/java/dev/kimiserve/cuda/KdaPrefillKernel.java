package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;

import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * Launches the chunked KDA prefill (src/main/cuda/kda_prefill.cu) over a varlen batch, in the form of fla's chunk_kda:
 * {@code kda_chunk_prep} for every 64-token chunk of every sequence at once (the chunk's triangular matrices with
 * 16-row sub-chunks, its inverse applied to the keys and values), {@code kda_chunk_state} over each sequence's chunks
 * in order (a block per sequence, head and 32-column state tile, two tensor-core products per chunk, storing the state
 * at each chunk's start), then {@code kda_chunk_output} for every chunk at once. K = V = 128. The state of each
 * sequence starts from and returns to its pool slot, so a prompt can be prefilled in several calls.
 *
 * <pre>
 * q, k, g  [T, H, 128] fp32   rows of all sequences back to back (q L2-normed and scaled, k L2-normed, g log decay)
 * v        [T, H, 128] fp32
 * beta     [T, H]      fp32
 * states   [slots, H, 128, 128] fp32, slots [B] int32
 * out      [T, H, 128] fp32
 * scratch  [chunks, H, 53376] fp32 (Aqk, w, u then v_new, kd, qg, e^G_last, the state at the chunk's start transposed)
 * </pre>
 */
public final class KdaPrefillKernel {
    public static final int HEAD_DIM = 128;
    public static final int CHUNK = 64;
    /** Floats of scratch per chunk and head (SPLIT_FLOATS in the .cu). */
    private static final int SCRATCH_FLOATS = CHUNK * CHUNK + 4 * CHUNK * HEAD_DIM + HEAD_DIM + HEAD_DIM * HEAD_DIM;
    private static final int PREP_THREADS = 320;
    /** kda_chunk_prep: k, q and G [64][132], then 256 floats that Akk and T [64][68] (in G's place) run into. */
    private static final int PREP_SHARED = 4 * (3 * CHUNK * 132 + 256);
    private static final int STATE_THREADS = 512;
    /**
     * kda_chunk_state: the state tile transposed [32][132], v_new transposed in two parts [32][68] each, the upper k
     * half's part of w S [64][40], two stages of w [64][132], kd [64][136], u [64][40], e^G_last.
     */
    private static final int STATE_SHARED = 4 * (32 * 132 + 2 * 32 * 68 + CHUNK * 40 + 2 * (CHUNK * 132 + CHUNK * 136 + CHUNK * 40 + HEAD_DIM));
    private static final int OUTPUT_THREADS = 256;
    /** kda_chunk_output: qg [64][132], half of h^T [64][132], Aqk [64][68], half of v_new [64][72]. */
    private static final int OUTPUT_SHARED = 4 * (CHUNK * 132 + 64 * 132 + CHUNK * 68 + CHUNK * 72);
    private final CudaDevice device;
    private final CUfunction prep;
    private final CUfunction state;
    private final CUfunction output;

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

    public KdaPrefillKernel(CudaDevice device, CudaModule module) {
        this.device = device;
        this.prep = module.function("kda_chunk_prep");
        this.state = module.function("kda_chunk_state");
        this.output = module.function("kda_chunk_output");
        device.makeCurrent();
        cuFuncSetAttribute(prep, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, PREP_SHARED);
        // two prep blocks per SM (100 KB each): the most shared memory the SM can give
        cuFuncSetAttribute(prep, CUfunction_attribute.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
        cuFuncSetAttribute(state, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, STATE_SHARED);
        cuFuncSetAttribute(output, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, OUTPUT_SHARED);
    }

    /** Scratch bytes for a plan: 213.5 KB per chunk and head. */
    public static long scratchBytes(Plan plan, int heads) {
        return 4L * plan.chunks * heads * SCRATCH_FLOATS;
    }

    public void launch(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                       DeviceBuffer slots, DeviceBuffer states, DeviceBuffer scratch, DeviceBuffer out) {
        if (heads <= 0 || heads > 65535 || plan.batch > 65535 || 2L * plan.chunks * heads > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("kda prefill: heads " + heads + ", batch " + plan.batch + ", chunks " + plan.chunks);
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
        launchPrep(plan, heads, q, k, v, g, beta, scratch);
        launchState(plan, heads, slots, states, scratch);
        launchOutput(plan, heads, scratch, out);
    }

    /** The first kernel alone (everything the state kernel reads); {@link #launch} runs all three. */
    void launchPrep(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                    DeviceBuffer scratch) {
        device.makeCurrent();
        KernelLaunch.launch(device, prep, plan.chunks * heads, 1, 1, PREP_THREADS, 1, 1, PREP_SHARED, false, q, k, v, g, beta, plan.chunkSeq,
                plan.chunkFirst, plan.seqStart, heads, scratch);
    }

    /** The sequential kernel alone, after {@link #launchPrep}. */
    void launchState(Plan plan, int heads, DeviceBuffer slots, DeviceBuffer states, DeviceBuffer scratch) {
        device.makeCurrent();
        KernelLaunch.launch(device, state, HEAD_DIM / 32, heads, plan.batch, STATE_THREADS, 1, 1, STATE_SHARED, false, plan.seqStart,
                plan.seqChunk0, slots, states, scratch, heads);
    }

    /** The output kernel alone, after {@link #launchState}. */
    void launchOutput(Plan plan, int heads, DeviceBuffer scratch, DeviceBuffer out) {
        device.makeCurrent();
        KernelLaunch.launch(device, output, 2 * plan.chunks * heads, 1, 1, OUTPUT_THREADS, 1, 1, OUTPUT_SHARED, false, plan.chunkSeq, plan.chunkFirst, plan.seqStart,
                heads, scratch, out);
    }
}
