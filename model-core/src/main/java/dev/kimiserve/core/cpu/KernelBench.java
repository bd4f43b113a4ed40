package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Kernel micro-benchmarks of the cpu backend ({@code kimi bench-kernels --backend cpu}): one JSON line per kernel and
 * shape with the median time of repeated runs and the achieved GB/s (bandwidth-bound kernels) or GFLOP/s.
 */
public final class KernelBench {
    private final CpuPool pool;
    private final Matmuls matmuls;
    private final int repeats;
    private Consumer<String> out;
    private final SplittableRandom rnd = new SplittableRandom(7);

    public KernelBench(int threads, int repeats, Consumer<String> out) {
        this.pool = new CpuPool(threads);
        this.matmuls = new Matmuls(pool);
        this.repeats = repeats;
        this.out = out;
    }

    /** Runs the whole suite (shapes of the small preset and of the 48B model), after one silent pass to warm the JIT. */
    public void runAll() {
        Consumer<String> real = out;
        this.out = line -> { };
        matmul(1, 1024, 1024);
        matmul(64, 1024, 1024);
        kdaDecode(1, 16, 64);
        kdaPrefill(128, 16, 64);
        mlaDecode(1, 1024, new MlaConfig(8, 64, 32, 64, 256, 0, 1e-6f));
        this.out = real;
        for (int[] nk : new int[][]{{1024, 1024}, {4096, 2304}, {2304, 4096}, {32000, 1024}}) {
            for (int m : new int[]{1, 8, 64, 512}) {
                matmul(m, nk[0], nk[1]);
            }
        }
        kdaDecode(1, 16, 64);
        kdaDecode(8, 16, 64);
        kdaDecode(1, 32, 128);
        kdaDecode(64, 32, 128);
        kdaPrefill(512, 16, 64);
        kdaPrefill(4096, 32, 128);
        mlaDecode(1, 4096, new MlaConfig(8, 64, 32, 64, 256, 0, 1e-6f));
        mlaDecode(1, 32768, new MlaConfig(32, 128, 64, 128, 512, 0, 1e-6f));
        mlaDecode(8, 4096, new MlaConfig(32, 128, 64, 128, 512, 0, 1e-6f));
    }

    /** bf16 W [n, k] times M activation rows. */
    public void matmul(int m, int n, int k) {
        Arena arena = Arena.ofAuto();
        MemorySegment seg = arena.allocate(2L * n * k, 64);
        for (long i = 0; i < (long) n * k; i++) {
            seg.set(Vec.SHORT_LE, 2 * i, (short) (0x3c00 + (i * 7919 % 1024)));
        }
        WeightMatrix w = WeightMatrix.of(new dev.kimiserve.core.tensor.Tensor("w", dev.kimiserve.core.tensor.DType.BF16, new long[]{n, k}, seg));
        float[] x = random(m * k);
        float[] y = new float[m * n];
        MatmulJob job = new MatmulJob().set(w, x, m, y);
        double sec = time(() -> matmuls.run(job));
        double bytes = 2.0 * n * k + 4.0 * m * (n + k);
        double flops = 2.0 * m * n * k;
        emit("matmul_bf16", String.format(Locale.ROOT, "\"m\":%d,\"n\":%d,\"k\":%d", m, n, k), sec, bytes, flops);
    }

    /** One recurrent KDA step for B sequences of H heads, state [K][K] fp32 read and written. */
    public void kdaDecode(int b, int heads, int kd) {
        int c = heads * kd;
        float[] q = unit(b * c, kd), k = unit(b * c, kd), v = random(b * c);
        float[] g = negative(b * c), beta = random(b * heads);
        float[][] states = new float[b][heads * kd * kd];
        float[] o = new float[b * c];
        double sec = time(() -> pool.forRange(b * heads, 1, (from, to) -> {
            for (int item = from; item < to; item++) {
                int s = item / heads;
                int h = item % heads;
                KdaCore.recurrentHead(q, k, v, g, beta, s, 1, heads, kd, kd, h, states[s], h * kd * kd, o);
            }
        }));
        double bytes = 2.0 * 4 * b * heads * kd * kd;
        emit("kda_decode", String.format(Locale.ROOT, "\"batch\":%d,\"heads\":%d,\"head_dim\":%d", b, heads, kd), sec, bytes, 8.0 * b * heads * kd * kd);
    }

    /** Chunked KDA prefill of T tokens, one sequence. */
    public void kdaPrefill(int t, int heads, int kd) {
        int c = heads * kd;
        float[] q = unit(t * c, kd), k = unit(t * c, kd), v = random(t * c);
        float[] g = negative(t * c), beta = random(t * heads);
        float[] s = new float[heads * kd * kd];
        float[] o = new float[t * c];
        double sec = time(() -> pool.forRange(heads, 1, (from, to) -> {
            for (int h = from; h < to; h++) {
                KdaCore.chunkedHead(q, k, v, g, beta, 0, t, heads, kd, kd, h, s, h * kd * kd, o);
            }
        }));
        emit("kda_prefill", String.format(Locale.ROOT, "\"tokens\":%d,\"heads\":%d,\"head_dim\":%d,\"tokens_per_s\":%.4g", t, heads, kd, t / sec),
                sec, 4.0 * t * c * 4, (6.0 * kd * kd + 3.0 * 64 * kd + 64.0 * 64) * 2 * t * heads);
    }

    /** Absorbed MLA decode attention over a latent cache of {@code context} tokens. */
    public void mlaDecode(int b, int context, MlaConfig cfg) {
        MlaAttention att = new MlaAttention(cfg, pool, matmuls);
        int heads = cfg.numHeads();
        int per = cfg.qkNopeHeadDim() + cfg.vHeadDim();
        Arena arena = Arena.ofAuto();
        MemorySegment seg = arena.allocate(2L * heads * per * cfg.kvLoraRank(), 64);
        WeightMatrix kvB = WeightMatrix.of(new dev.kimiserve.core.tensor.Tensor("kv_b", dev.kimiserve.core.tensor.DType.BF16,
                new long[]{(long) heads * per, cfg.kvLoraRank()}, seg));
        WeightMatrix[] kvBk = new WeightMatrix[heads];
        WeightMatrix[] kvBv = new WeightMatrix[heads];
        for (int h = 0; h < heads; h++) {
            kvBk[h] = kvB.rows(h * per, h * per + cfg.qkNopeHeadDim());
            kvBv[h] = kvB.rows(h * per + cfg.qkNopeHeadDim(), (h + 1) * per);
        }
        List<Segment> segs = new ArrayList<>();
        float[] latent = random(cfg.latentSize());
        for (int i = 0; i < b; i++) {
            SequenceState st = dev.kimiserve.core.state.SequenceState.create(oneMlaLayer(cfg));
            MlaCache cache = st.mla(0);
            for (int t = 0; t < context; t++) {
                cache.append(latent, 0);
            }
            segs.add(new Segment(st, i, 1, true));
        }
        float[] q = random(b * heads * cfg.qkHeadDim());
        float[] o = new float[b * heads * cfg.vHeadDim()];
        double sec = time(() -> att.absorbed(kvBk, kvBv, segs, 0, q, o));
        double bytes = 4.0 * b * context * cfg.latentSize() + 2.0 * heads * per * cfg.kvLoraRank();
        emit("mla_decode", String.format(Locale.ROOT, "\"batch\":%d,\"context\":%d,\"heads\":%d,\"kv_lora_rank\":%d", b, context, heads, cfg.kvLoraRank()),
                sec, bytes, 2.0 * b * heads * context * (cfg.latentSize() + cfg.kvLoraRank()));
    }

    private static dev.kimiserve.core.config.KimiLinearConfig oneMlaLayer(MlaConfig m) {
        return new dev.kimiserve.core.config.KimiLinearConfig(16, 16, 1, List.of(dev.kimiserve.core.config.LayerKind.MLA),
                List.of(dev.kimiserve.core.config.MlpKind.DENSE), 16, 1e-5f, null, m, null, false, 0, List.of(), 0, 1L << 40);
    }

    /** Median seconds per run, after at least 300 ms (and 5 runs) of warm-up so that the JIT has compiled the kernel. */
    private double time(Runnable r) {
        long warmStart = System.nanoTime();
        for (int i = 0; i < 5 || System.nanoTime() - warmStart < 300_000_000L; i++) {
            r.run();
        }
        double[] t = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return t[repeats / 2];
    }

    private void emit(String kernel, String shape, double sec, double bytes, double flops) {
        out.accept(String.format(Locale.ROOT, "{\"kernel\":\"%s\",%s,\"backend\":\"cpu\",\"threads\":%d,\"median_us\":%.2f,\"gb_per_s\":%.2f,\"gflop_per_s\":%.2f}",
                kernel, shape, pool.threads(), sec * 1e6, bytes / sec / 1e9, flops / sec / 1e9));
    }

    private float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    private float[] unit(int n, int dim) {
        float[] a = random(n);
        for (int i = 0; i < n; i += dim) {
            Norms.l2Normalize(a, i, dim, 1e-6f, 1f);
        }
        return a;
    }

    private float[] negative(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (-rnd.nextDouble() * 0.5);
        }
        return a;
    }

    public void close() {
        pool.close();
    }
}
