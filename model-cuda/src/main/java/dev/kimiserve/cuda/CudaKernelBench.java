package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.DoubleSupplier;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;

/**
 * Kernel micro-benchmarks of the cuda backend ({@code kimi bench-kernels --backend cuda}): one JSON line per kernel and
 * shape, timed with device events around each launch after the L2 cache was flushed (a 256 MiB write, as
 * triton's do_bench does), median of the repeats. The device-to-device copy ceiling is measured in the same run.
 */
public final class CudaKernelBench implements AutoCloseable {
    private static final long FLUSH_BYTES = 256L << 20;
    private final CudaDevice device;
    private final CudaModule kda;
    private final int repeats;
    private final Consumer<String> out;
    private final DeviceBuffer flush;
    private final CUevent start = new CUevent();
    private final CUevent stop = new CUevent();

    public CudaKernelBench(CudaDevice device, int repeats, Consumer<String> out) {
        this.device = device;
        this.repeats = repeats;
        this.out = out;
        this.kda = new CudaModule(device, "kda_decode");
        this.flush = DeviceBuffer.allocate(device, FLUSH_BYTES);
        device.makeCurrent();
        cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT);
        cuEventCreate(stop, CUevent_flags.CU_EVENT_DEFAULT);
    }

    /** The kernel families {@link #run} knows, in the order it runs them. */
    public static final java.util.Set<String> FAMILIES = new java.util.LinkedHashSet<>(
            java.util.List.of("copy", "logits", "kda_decode", "kda_prefill", "mla_decode", "matmul", "gemv"));

    public void runAll() {
        run(FAMILIES);
    }

    /** Every shape of the named families (an unknown name fails before anything runs). */
    public void run(java.util.Set<String> families) {
        for (String f : families) {
            if (!FAMILIES.contains(f)) {
                throw new IllegalArgumentException("unknown kernel family '" + f + "' (choose from " + FAMILIES + ")");
            }
        }
        if (families.contains("copy")) {
            copyCeiling(1L << 30);
        }
        if (families.contains("logits")) {
            for (int rows : new int[]{1, 16, 64}) {
                logitsToHost(rows, 163840);
            }
        }
        if (families.contains("kda_decode")) {
            for (int b : new int[]{1, 16, 64, 256}) {
                kdaDecode(b, 32);
            }
        }
        if (families.contains("kda_prefill")) {
            try (CudaModule prefill = new CudaModule(device, "kda_prefill")) {
                KdaPrefillKernel kernel = new KdaPrefillKernel(device, prefill);
                for (int t : new int[]{1024, 4096, 16384, 65536}) {
                    kdaPrefill(kernel, t, 32);
                }
            }
        }
        if (families.contains("mla_decode")) {
            try (CudaModule mla = new CudaModule(device, "mla_decode")) {
                MlaDecodeKernel kernel = new MlaDecodeKernel(device, mla);
                for (int b : new int[]{1, 32}) {
                    for (int context : new int[]{32768, 131072}) {
                        mlaDecode(kernel, b, context);
                    }
                }
            }
        }
        if (families.contains("matmul")) {
            if (CublasLt.unavailableReason() == null) {
                try (CublasLt blas = new CublasLt(device)) {
                    for (int m : new int[]{1, 8, 64, 4096}) {
                        for (int[] nk : new int[][]{{4096, 2304}, {2304, 4096}, {12288, 2304}}) {
                            matmul(blas, m, nk[0], nk[1]);
                        }
                    }
                }
            } else {
                out.accept("{\"kernel\":\"matmul_bf16\",\"skipped\":\"" + CublasLt.unavailableReason().replace("\"", "'") + "\"}");
            }
        }
        if (families.contains("gemv")) {
            try (CudaModule engine = new CudaModule(device, "engine")) {
                EngineKernels kernels = new EngineKernels(device, engine);
                for (int m : new int[]{1, 8}) {
                    for (int[] nk : GEMV_SHAPES) {
                        gemv(kernels, m, nk[0], nk[1]);
                    }
                }
            }
        }
    }

    /** Every gemv.cu tiling next to engine.cu's kernel on the gemv shapes, m = 1, 4 and 16 (to choose kimi.cuda.gemv). */
    public void gemvVariants() {
        try (CudaModule engine = new CudaModule(device, "engine"); CudaModule tiles = new CudaModule(device, "gemv")) {
            EngineKernels kernels = new EngineKernels(device, engine);
            GemvKernel tiled = new GemvKernel(device, tiles);
            for (int m : new int[]{1, 4, 16}) {
                for (int[] nk : GEMV_SHAPES) {
                    gemv(kernels, m, nk[0], nk[1]);
                    for (GemvKernel.Variant v : GemvKernel.VARIANTS) {
                        gemv((x, w, y) -> tiled.launch(v, x, nk[1], w, y, nk[0], m, nk[0], nk[1], false), v.name(), m, nk[0], nk[1]);
                    }
                }
            }
            if (KernelLaunch.overlapSupported(device)) {   // back to back, as in a decode step: plain and overlapped launches
                GemvKernel overlapped = new GemvKernel(device, tiles, true);
                GemvKernel.Variant v = GemvKernel.variant(EngineKernels.DEFAULT_GEMV);
                for (int[] nk : GEMV_SHAPES) {
                    for (GemvKernel g : new GemvKernel[]{tiled, overlapped}) {
                        gemv((x, w, y) -> g.launch(v, x, nk[1], w, y, nk[0], 1, nk[0], nk[1], false),
                                v.name() + (g == overlapped ? " chain overlapped" : " chain"), 1, nk[0], nk[1], CHAIN);
                    }
                    for (GemvKernel g : new GemvKernel[]{tiled, overlapped}) {   // the same chain captured as one CUDA graph
                        gemvGraph(g, v, nk[0], nk[1], v.name() + (g == overlapped ? " chain graph overlapped" : " chain graph"));
                    }
                    for (GemvKernel.Variant other : GemvKernel.VARIANTS) {      // every tiling as a decode step runs it
                        if (other != v) {
                            gemvGraph(overlapped, other, nk[0], nk[1], other.name() + " chain graph overlapped");
                        }
                    }
                }
            }
        }
    }

    /**
     * Logits [rows, vocab] from the device into a Java array, host wall time (the host takes part): the driver's copy
     * straight into the array (pageable memory) against {@link HostLogits} (part by part to pinned memory, host threads copying into the array).
     */
    private void logitsToHost(int rows, int vocab) {
        float[] out = new float[rows * vocab];
        try (DeviceBuffer logits = DeviceBuffer.allocate(device, 4L * rows * vocab); HostLogits pinned = new HostLogits(device, rows, vocab)) {
            logits.fill(1.5f);
            String shape = String.format(Locale.ROOT, "\"m\":%d,\"n\":%d,\"variant\":", rows, vocab);
            emit("logits_to_host", shape + "\"pageable\"", wallTime(() -> logits.download(out, 0, rows * vocab)), 4.0 * rows * vocab, 0);
            emit("logits_to_host", shape + "\"pinned\"", wallTime(() -> {
                for (int p = 0; p < pinned.parts(); p++) {
                    pinned.partDone(p);                      // all computed already: only the copies and their overlap count
                }
                pinned.download(logits, rows, out, 0);
            }), 4.0 * rows * vocab, 0);
        }
    }

    /** Median host wall time in us of {@code work} (which waits for the device itself), after 10 untimed runs. */
    private double wallTime(Runnable work) {
        device.makeCurrent();
        device.synchronize();
        return median(work, () -> {
            long t0 = System.nanoTime();
            work.run();
            return (System.nanoTime() - t0) / 1e3;
        });
    }

    /** {@link #CHAIN} launches of {@code g} at m = 1 on rotating weights, recorded as one CUDA graph and replayed. */
    private void gemvGraph(GemvKernel g, GemvKernel.Variant v, int n, int k, String label) {
        SplittableRandom rnd = new SplittableRandom(n * 3L + k);
        DeviceBuffer[] ws = weightSets(rnd, n, k);
        try (DeviceBuffer x = DeviceBuffer.of(device, KdaInputs.normal(rnd, k)); DeviceBuffer y = DeviceBuffer.allocate(device, 4L * n);
             DecodeGraphs graphs = new DecodeGraphs(device)) {
            double us = time(() -> graphs.launch(0, () -> {
                for (int c = 0; c < CHAIN; c++) {
                    g.launch(v, x, k, ws[c % ws.length], y, n, 1, n, k, false);
                }
            })) / CHAIN;
            emit("gemv_bf16", String.format(Locale.ROOT, "\"m\":1,\"n\":%d,\"k\":%d,\"variant\":\"%s\"", n, k, label), us, 2.0 * n * k + 4.0 * (n + k),
                    2.0 * n * k);
        } finally {
            closeAll(ws);
        }
    }

    /**
     * Copies of one random bf16 [n, k] matrix for launches to rotate over: up to 16, at least 2, about 1 GiB in all, so
     * that no launch finds its weights in L2 (a model's successive projections read theirs from memory).
     */
    private DeviceBuffer[] weightSets(SplittableRandom rnd, int n, int k) {
        short[] w = new short[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = dev.kimiserve.core.tools.RandomCheckpoint.toBf16((float) rnd.nextGaussian() * 0.02f);
        }
        DeviceBuffer[] ws = new DeviceBuffer[(int) Math.max(2, Math.min(16, (1L << 30) / (2L * n * k)))];
        for (int s = 0; s < ws.length; s++) {
            ws[s] = DeviceBuffer.of(device, w);
        }
        return ws;
    }

    private static void closeAll(DeviceBuffer[] buffers) {
        for (DeviceBuffer b : buffers) {
            b.close();
        }
    }

    /** Launches per timed run of the chain figures (each reads its own weights). */
    private static final int CHAIN = 16;

    /**
     * 48B projections [N, K]: KDA input, o_proj, an expert's gate|up, lm_head, shared-expert down, KDA f/g up, router,
     * router stacked with the shared expert's gate|up (what a decode step runs).
     */
    private static final int[][] GEMV_SHAPES = {{12576, 2304}, {2304, 4096}, {2048, 2304}, {163840, 2304}, {2304, 1024}, {4096, 128},
            {256, 2304}, {2304, 2304}};

    /** A projection launch on given buffers. */
    @FunctionalInterface
    private interface Projection {
        void run(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y);
    }

    /**
     * y[M, N] = x[M, K] w[N, K]^T with fp32 activations and bf16 weights (the engine's projection for few rows); the
     * shapes of the 48B model's KDA input projection, o_proj, one expert's gate|up and lm_head. Weight sets rotate.
     */
    void gemv(EngineKernels kernels, int m, int n, int k) {
        gemv((x, w, y) -> kernels.gemv(x, k, w, y, n, m, n, k, false), "warp", m, n, k);
    }

    private void gemv(Projection projection, String variant, int m, int n, int k) {
        gemv(projection, variant, m, n, k, 1);
    }

    /** {@code chain} launches per timed run, back to back on rotating weights; the figure is per launch. */
    private void gemv(Projection projection, String variant, int m, int n, int k, int chain) {
        SplittableRandom rnd = new SplittableRandom(n * 7L + k);
        DeviceBuffer[] ws = weightSets(rnd, n, k);
        try (DeviceBuffer x = DeviceBuffer.of(device, KdaInputs.normal(rnd, m * k)); DeviceBuffer y = DeviceBuffer.allocate(device, 4L * m * n)) {
            int[] next = {0};
            double us = time(() -> {
                for (int c = 0; c < chain; c++) {
                    projection.run(x, ws[next[0]], y);
                    next[0] = (next[0] + 1) % ws.length;
                }
            }) / chain;
            emit("gemv_bf16", String.format(Locale.ROOT, "\"m\":%d,\"n\":%d,\"k\":%d,\"variant\":\"%s\"", m, n, k, variant), us, 2.0 * n * k + 4.0 * m * (n + k),
                    2.0 * m * n * k);
        } finally {
            closeAll(ws);
        }
    }

    /**
     * Y[M, N] = X[M, K] W[N, K]^T in bf16 through cuBLASLt (bf16 out). Weight sets rotate so that each launch reads its
     * weights from memory, as a model's successive projections do.
     */
    public void matmul(CublasLt blas, int m, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(m * 31L + n);
        DeviceBuffer[] ws = weightSets(rnd, n, k);
        short[] x = new short[m * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = dev.kimiserve.core.tools.RandomCheckpoint.toBf16((float) rnd.nextGaussian());
        }
        try (DeviceBuffer dx = DeviceBuffer.of(device, x); DeviceBuffer dy = DeviceBuffer.allocate(device, 2L * m * n)) {
            int[] next = {0};
            double us = time(() -> {
                blas.matmul(dx, ws[next[0]], dy, m, n, k, CublasLt.Out.BF16);
                next[0] = (next[0] + 1) % ws.length;
            });
            emit("matmul_bf16", String.format(Locale.ROOT, "\"m\":%d,\"n\":%d,\"k\":%d,\"via\":\"cublasLt\"", m, n, k), us,
                    2.0 * n * k + 2.0 * m * (n + k), 2.0 * m * n * k);
        } finally {
            closeAll(ws);
        }
    }

    /** The copy ceiling in bytes per second (read plus written), measured as {@link #copyCeiling} does, printing nothing. */
    public double copyBytesPerSecond(long bytes) {
        return 2.0 * bytes / (copyMicros(bytes) * 1e-6);
    }

    /** Device-to-device copy of {@code bytes}: the bandwidth ceiling (bytes read plus bytes written). */
    public void copyCeiling(long bytes) {
        emit("copy_d2d", String.format(Locale.ROOT, "\"bytes\":%d", bytes), copyMicros(bytes), 2.0 * bytes, 0);
    }

    /** Median microseconds of a device-to-device copy of {@code bytes}. */
    private double copyMicros(long bytes) {
        try (DeviceBuffer a = DeviceBuffer.allocate(device, bytes); DeviceBuffer b = DeviceBuffer.allocate(device, bytes)) {
            a.fill(1f);
            return time(() -> cuMemcpyDtoDAsync(b.pointer(), a.pointer(), bytes, device.stream()));
        }
    }

    /**
     * One KDA decode step for B sequences of H heads (K = V = 128). The state pool holds enough slots that successive
     * repeats touch different slots (at least 2 GiB in all), so no repeat finds its state in L2.
     */
    public void kdaDecode(int batch, int heads) {
        kdaDecode(batch, heads, null);
    }

    /** Every compiled tiling of kda_decode at B = 1, 16, 64, 256 (to choose the default; docs/cuda-notes.md). */
    public void kdaDecodeVariants() {
        for (KdaDecodeKernel.Variant v : KdaDecodeKernel.VARIANTS) {
            for (int b : new int[]{1, 16, 64, 256}) {
                kdaDecode(b, 32, v);
            }
        }
    }

    private void kdaDecode(int batch, int heads, KdaDecodeKernel.Variant variant) {
        int d = KdaDecodeKernel.HEAD_DIM;
        long slotBytes = 4L * heads * d * d;
        int sets = (int) Math.max(1, Math.min(64, (2L << 30) / (slotBytes * batch)));
        SplittableRandom rnd = new SplittableRandom(11);
        KdaDecodeKernel kernel = new KdaDecodeKernel(device, kda, variant, false);
        float[] q = KdaInputs.unitRows(rnd, batch * heads, d, (float) (1 / Math.sqrt(d)));
        float[] k = KdaInputs.unitRows(rnd, batch * heads, d, 1f);
        float[] v = KdaInputs.normal(rnd, batch * heads * d);
        float[] g = KdaInputs.logDecay(rnd, batch * heads * d);
        float[] beta = KdaInputs.uniform(rnd, batch * heads);
        try (DeviceBuffer dq = DeviceBuffer.of(device, q); DeviceBuffer dk = DeviceBuffer.of(device, k);
             DeviceBuffer dv = DeviceBuffer.of(device, v); DeviceBuffer dg = DeviceBuffer.of(device, g);
             DeviceBuffer db = DeviceBuffer.of(device, beta); DeviceBuffer dout = DeviceBuffer.allocate(device, 4L * batch * heads * d);
             DeviceBuffer states = DeviceBuffer.allocate(device, slotBytes * batch * sets)) {
            states.fill(0.01f);
            DeviceBuffer[] slotSets = new DeviceBuffer[sets];
            for (int s = 0; s < sets; s++) {
                int[] slots = new int[batch];
                for (int i = 0; i < batch; i++) {
                    slots[i] = s * batch + i;
                }
                slotSets[s] = DeviceBuffer.of(device, slots);
            }
            int[] next = {0};
            double us = time(() -> {
                kernel.launch(batch, heads, dq, dk, dv, dg, db, slotSets[next[0]], states, dout);
                next[0] = (next[0] + 1) % sets;
            });
            for (DeviceBuffer b : slotSets) {
                b.close();
            }
            double bytes = 2.0 * slotBytes * batch;
            String shape = String.format(Locale.ROOT, "\"batch\":%d,\"heads\":%d,\"head_dim\":%d", batch, heads, d)
                    + ",\"variant\":\"" + kernel.variantFor(batch).entry() + "\"" + (variant == null ? "" : ",\"forced\":true");
            emit("kda_decode", shape, us, bytes,
                    8.0 * batch * heads * d * d);
        }
    }

    /**
     * Chunked KDA prefill of one sequence of {@code tokens} (H heads, K = V = 128) from a zero state: all three kernels,
     * then each alone (prep, state, output; the latter two on the scratch the full run left). Bytes are each kernel's
     * unique traffic (the state kernel's four column tiles of a head read its w and kd from L2 after the first).
     */
    public void kdaPrefill(KdaPrefillKernel kernel, int tokens, int heads) {
        int d = KdaPrefillKernel.HEAD_DIM;
        SplittableRandom rnd = new SplittableRandom(tokens);
        int n = tokens * heads;
        try (KdaPrefillKernel.Plan plan = new KdaPrefillKernel.Plan(device, new int[]{tokens});
             DeviceBuffer q = DeviceBuffer.of(device, KdaInputs.unitRows(rnd, n, d, (float) (1 / Math.sqrt(d))));
             DeviceBuffer k = DeviceBuffer.of(device, KdaInputs.unitRows(rnd, n, d, 1f));
             DeviceBuffer v = DeviceBuffer.of(device, KdaInputs.normal(rnd, n * d));
             DeviceBuffer g = DeviceBuffer.of(device, KdaInputs.logDecay(rnd, n * d));
             DeviceBuffer beta = DeviceBuffer.of(device, KdaInputs.uniform(rnd, n));
             DeviceBuffer slots = DeviceBuffer.of(device, new int[]{0});
             DeviceBuffer states = DeviceBuffer.allocate(device, 4L * heads * d * d);
             DeviceBuffer scratch = DeviceBuffer.allocate(device, KdaPrefillKernel.scratchBytes(plan, heads));
             DeviceBuffer out = DeviceBuffer.allocate(device, 4L * n * d)) {
            double us = time(() -> {
                states.fill(0f);
                kernel.launch(plan, heads, q, k, v, g, beta, slots, states, scratch, out);
            });
            String shape = String.format(Locale.ROOT, "\"tokens\":%d,\"heads\":%d,\"head_dim\":%d", tokens, heads, d);
            double pieces = (double) plan.chunks() * heads;             // (chunk, head) pairs
            emit("kda_prefill", shape + String.format(Locale.ROOT, ",\"tokens_per_s\":%.4g", tokens / (us * 1e-6)), us,
                    4.0 * 5 * n * d, (6.0 * d * d + 3.0 * 64 * d + 64.0 * 64) * 2 * n);
            double prepUs = time(() -> kernel.launchPrep(plan, heads, q, k, v, g, beta, scratch));
            emit("kda_prefill_prep", shape, prepUs, 4.0 * (4L * n * d + n) + 4.0 * pieces * (64 * 64 + 4 * 64 * d + d), 0);
            double stateUs = time(() -> {
                states.fill(0f);
                kernel.launchState(plan, heads, slots, states, scratch);
            });
            emit("kda_prefill_state", shape, stateUs, 4.0 * pieces * (3 * 64 * d + d + d * d + 64 * d), 0);
            double outputUs = time(() -> kernel.launchOutput(plan, heads, scratch, out));
            emit("kda_prefill_output", shape, outputUs, 4.0 * pieces * (2 * 64 * d + d * d + 64 * 64) + 4.0 * n * d, 0);
        }
    }

    /**
     * Absorbed MLA decode attention for B sequences of {@code context} cached tokens each (32 heads, 576-wide latents):
     * the latent cache is the traffic (read once for all heads). At B = 1 a copy moving as many bytes follows: the
     * bandwidth a launch of that size can reach at all.
     */
    public void mlaDecode(MlaDecodeKernel kernel, int batch, int context) {
        int maxPages = context / MlaDecodeKernel.PAGE;
        int[] pages = new int[batch * maxPages];
        for (int i = 0; i < pages.length; i++) {
            pages[i] = i;
        }
        int[] lens = new int[batch];
        java.util.Arrays.fill(lens, context);
        int splits = kernel.splitsFor(batch, context);
        long cacheBytes = 2L * batch * context * MlaDecodeKernel.WIDTH;
        float pairOfSmallBf16 = Float.intBitsToFloat(0x3C003C00);            // 0.0078125 in both halves: no zeros
        try (DeviceBuffer q = DeviceBuffer.allocate(device, 2L * batch * MlaDecodeKernel.HEADS * MlaDecodeKernel.WIDTH);
             DeviceBuffer cache = DeviceBuffer.allocate(device, cacheBytes); DeviceBuffer dPages = DeviceBuffer.of(device, pages);
             DeviceBuffer dLens = DeviceBuffer.of(device, lens);
             DeviceBuffer ws = DeviceBuffer.allocate(device, MlaDecodeKernel.workspaceBytes(batch, splits));
             DeviceBuffer z = DeviceBuffer.allocate(device, 4L * batch * MlaDecodeKernel.HEADS * MlaDecodeKernel.LATENT)) {
            q.fill(pairOfSmallBf16);
            cache.fill(pairOfSmallBf16);
            double us = time(() -> kernel.launch(batch, q, cache, dPages, maxPages, dLens, splits, ws, z));
            double flops = 2.0 * batch * context * MlaDecodeKernel.HEADS * (MlaDecodeKernel.WIDTH + MlaDecodeKernel.LATENT);
            emit("mla_decode", String.format(Locale.ROOT, "\"batch\":%d,\"context\":%d,\"heads\":32,\"kv_lora_rank\":512,\"splits\":%d",
                    batch, context, splits), us, cacheBytes, flops);
        }
        if (batch == 1) {
            copyCeiling(cacheBytes / 2);    // the same bytes moved (read plus written) by a plain copy: what launch and ramp leave
        }
    }

    /**
     * Median microseconds of {@code repeats} timed runs (after 10 untimed: the launch path's Java code must be compiled
     * before host time inside the timed window stops counting), each preceded by an L2 flush.
     */
    private double time(Runnable launch) {
        float[] ms = new float[1];
        int[] run = {0};
        return median(launch, () -> {
            flush.fill(run[0]++);
            cuEventRecord(start, device.stream());
            launch.run();
            cuEventRecord(stop, device.stream());
            cuEventSynchronize(stop);
            cuEventElapsedTime(ms, start, stop);
            return ms[0] * 1000.0;
        });
    }

    /** The median of {@code repeats} samples, after 10 untimed runs of {@code work} (device current on this thread). */
    private double median(Runnable work, DoubleSupplier sample) {
        device.makeCurrent();
        for (int i = 0; i < 10; i++) {
            work.run();
        }
        double[] values = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            values[r] = sample.getAsDouble();
        }
        Arrays.sort(values);
        return values[repeats / 2];
    }

    private void emit(String kernel, String shape, double us, double bytes, double flops) {
        out.accept(String.format(Locale.ROOT, "{\"kernel\":\"%s\",%s,\"backend\":\"cuda\",\"device\":\"%s\",\"median_us\":%.2f,\"gb_per_s\":%.1f%s}",
                kernel, shape, device.name(), us, bytes / (us * 1e-6) / 1e9,
                flops > 0 ? String.format(Locale.ROOT, ",\"gflop_per_s\":%.1f", flops / (us * 1e-6) / 1e9) : ""));
    }

    @Override
    public void close() {
        device.makeCurrent();
        cuEventDestroy(start);
        cuEventDestroy(stop);
        flush.close();
        kda.close();
    }
}
