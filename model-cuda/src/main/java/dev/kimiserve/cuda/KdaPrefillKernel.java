package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;

import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * Launches the chunked KDA prefill (src/main/cuda/kda_prefill.cu) over a varlen batch. The fused form (default):
 * {@code kda_chunk_intra} for every 64-token chunk of every sequence at once (exact pairwise decays, the triangular
 * inverse), then {@code kda_chunk_sweep} over each sequence's chunks in order, a block per (sequence, head, 32-column
 * state tile). The split form ({@code kimi.cuda.kda-prefill=split}, as fla's chunk_kda): {@code kda_chunk_prep} for
 * every chunk (the inverse applied to the keys and values), {@code kda_chunk_state} sequential over chunks with two
 * tensor-core products per chunk, storing the state at each chunk's start, then {@code kda_chunk_output} for every
 * chunk at once. K = V = 128. The state of each sequence starts from and returns to its pool slot, so a prompt can be prefilled in
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
    /** The setting that picks the form: {@code fused} (intra kernel + sweep) or {@code split} (prep, state, output). */
    static final String FORM_SETTING = "kimi.cuda.kda-prefill";
    /** Floats of the split form's scratch per chunk and head: Aqk, w, u, kd, qg, e^G_last, h (SPLIT_FLOATS in the .cu). */
    private static final int SPLIT_FLOATS = CHUNK * CHUNK + 4 * CHUNK * HEAD_DIM + HEAD_DIM + HEAD_DIM * HEAD_DIM;
    /** kda_chunk_prep: q, k, G, the anchors' scaled k rows (96) and the scaled k rows past the first sub-chunk (48). */
    private static final int PREP_SHARED = 4 * (3 * CHUNK + 96 + 48) * R;
    /** kda_chunk_state: the state tile [128][40], v_new [64][40], two stages of w, kd [64][132], u [64][40], e^G_last. */
    private static final int STATE_SHARED = 4 * (HEAD_DIM * 40 + CHUNK * 40 + 2 * (2 * CHUNK * 132 + CHUNK * 40 + HEAD_DIM));
    /** kda_chunk_output: qg [64][132], half of h [128][72], Aqk [64][68], half of v_new [64][72]. */
    private static final int OUTPUT_SHARED = 4 * (CHUNK * 132 + HEAD_DIM * 72 + CHUNK * 68 + CHUNK * 72);
    private final CudaDevice device;
    private final boolean split;
    private final CUfunction intra;
    private final int intraShared;
    private final CUfunction sweep;
    private final int sweepShared;
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

    /**
     * With the kernels named by {@code kimi.cuda.kda-prefill} / {@code KIMI_CUDA_KDA_PREFILL} (fused by default), and
     * for the fused form {@code kimi.cuda.kda-intra} / {@code KIMI_CUDA_KDA_INTRA} (exact by default) and
     * {@code kimi.cuda.kda-sweep} / {@code KIMI_CUDA_KDA_SWEEP} (fp32 by default).
     */
    public KdaPrefillKernel(CudaDevice device, CudaModule module) {
        this(device, module, choice(FORM_SETTING, "KIMI_CUDA_KDA_PREFILL", "fused", "split"),
                choice(INTRA_SETTING, "KIMI_CUDA_KDA_INTRA", "exact", "sub"), choice(SWEEP_SETTING, "KIMI_CUDA_KDA_SWEEP", "fp32", "tc"));
    }

    /**
     * The fused form.
     *
     * @param subChunks         kda_chunk_intra_sub (exact decays inside 16-row sub-chunks, anchored products across)
     * @param tensorCoreSweep   kda_chunk_sweep_tc (the sweep's products on tensor cores, 3xTF32)
     */
    public KdaPrefillKernel(CudaDevice device, CudaModule module, boolean subChunks, boolean tensorCoreSweep) {
        this(device, module, false, subChunks, tensorCoreSweep);
    }

    /** The split form: kda_chunk_prep, kda_chunk_state, kda_chunk_output. */
    public static KdaPrefillKernel split(CudaDevice device, CudaModule module) {
        return new KdaPrefillKernel(device, module, true, false, false);
    }

    private KdaPrefillKernel(CudaDevice device, CudaModule module, boolean split, boolean subChunks, boolean tensorCoreSweep) {
        this.device = device;
        this.split = split;
        if (split) {
            this.intra = module.function("kda_chunk_prep");
            this.intraShared = PREP_SHARED;
            this.sweep = module.function("kda_chunk_state");
            this.sweepShared = STATE_SHARED;
            this.output = module.function("kda_chunk_output");
        } else {
            this.intra = module.function(subChunks ? "kda_chunk_intra_sub" : "kda_chunk_intra");
            this.intraShared = subChunks ? INTRA_SUB_SHARED : INTRA_SHARED;
            this.sweep = module.function(tensorCoreSweep ? "kda_chunk_sweep_tc" : "kda_chunk_sweep");
            this.sweepShared = tensorCoreSweep ? SWEEP_TC_SHARED : SWEEP_SHARED;
            this.output = null;
        }
        device.makeCurrent();
        cuFuncSetAttribute(intra, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, intraShared);
        cuFuncSetAttribute(sweep, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sweepShared);
        if (split) {
            cuFuncSetAttribute(output, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, OUTPUT_SHARED);
        }
    }

    /** Whether this is the split form. */
    public boolean isSplit() {
        return split;
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

    /**
     * Scratch bytes for a plan: T and Aqk of every chunk and head (fused form), or Aqk, w, u, kd, qg, e^G_last and the
     * state at the chunk's start (split form, 213.5 KB per chunk and head).
     */
    public long scratchBytes(Plan plan, int heads) {
        return 4L * plan.chunks * heads * (split ? SPLIT_FLOATS : 2 * CHUNK * CHUNK);
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
        launchPrep(plan, heads, q, k, v, g, beta, scratch);
        if (split) {
            launchState(plan, heads, slots, states, scratch);
            launchOutput(plan, heads, scratch, out);
        } else {
            launchSweep(plan, heads, q, k, v, g, beta, slots, states, scratch, out);
        }
    }

    /** The split form's sequential kernel alone, after {@link #launchPrep}. */
    void launchState(Plan plan, int heads, DeviceBuffer slots, DeviceBuffer states, DeviceBuffer scratch) {
        device.makeCurrent();
        cuLaunchKernel(sweep, HEAD_DIM / 32, heads, plan.batch, 256, 1, 1, sweepShared, device.stream(),
                Pointer.to(Pointer.to(plan.seqStart.pointer()), Pointer.to(plan.seqChunk0.pointer()), Pointer.to(slots.pointer()),
                        Pointer.to(states.pointer()), Pointer.to(scratch.pointer()), Pointer.to(new int[]{heads})), null);
    }

    /** The split form's output kernel alone, after {@link #launchState}. */
    void launchOutput(Plan plan, int heads, DeviceBuffer scratch, DeviceBuffer out) {
        device.makeCurrent();
        cuLaunchKernel(output, plan.chunks, heads, 2, 256, 1, 1, OUTPUT_SHARED, device.stream(),
                Pointer.to(Pointer.to(plan.chunkSeq.pointer()), Pointer.to(plan.chunkFirst.pointer()), Pointer.to(plan.seqStart.pointer()),
                        Pointer.to(new int[]{heads}), Pointer.to(scratch.pointer()), Pointer.to(out.pointer())), null);
    }

    /**
     * The first kernel alone (every chunk's T and Aqk, or in the split form everything before the state kernel);
     * {@link #launch} runs them all.
     */
    void launchPrep(Plan plan, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                    DeviceBuffer scratch) {
        device.makeCurrent();
        if (split) {
            cuLaunchKernel(intra, plan.chunks, heads, 1, 512, 1, 1, intraShared, device.stream(),     // PREP_THREADS
                    Pointer.to(Pointer.to(q.pointer()), Pointer.to(k.pointer()), Pointer.to(v.pointer()), Pointer.to(g.pointer()),
                            Pointer.to(beta.pointer()), Pointer.to(plan.chunkSeq.pointer()), Pointer.to(plan.chunkFirst.pointer()),
                            Pointer.to(plan.seqStart.pointer()), Pointer.to(new int[]{heads}), Pointer.to(scratch.pointer())), null);
            return;
        }
        cuLaunchKernel(intra, plan.chunks, heads, 1, 256, 1, 1, intraShared, device.stream(),
                Pointer.to(Pointer.to(q.pointer()), Pointer.to(k.pointer()), Pointer.to(g.pointer()), Pointer.to(beta.pointer()),
                        Pointer.to(plan.chunkSeq.pointer()), Pointer.to(plan.chunkFirst.pointer()), Pointer.to(plan.seqStart.pointer()),
                        Pointer.to(new int[]{heads}), Pointer.to(scratch.pointer())), null);
    }

    /** The fused form's second kernel alone (the sequential sweep), after {@link #launchPrep} filled the scratch. */
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
