package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Every gemv.cu tiling (and engine.cu's gemv_bf16) against a double-precision product on random shapes: outputs poisoned
 * with NaN first (a missed element fails), accumulation, and a row's result equal bit for bit whatever the batch.
 */
class GemvKernelTest extends GpuTest {
    static final int[][] SHAPES = {{1, 8}, {7, 64}, {40, 200}, {300, 2304}, {129, 4104}};

    @Test
    void everyTilingMatchesTheDoubleProduct() {
        GemvKernel tiled = new GemvKernel(device, module("gemv"));
        EngineKernels engine = new EngineKernels(device, module("engine"));
        SplittableRandom rnd = new SplittableRandom(21);
        for (int[] nk : SHAPES) {
            int n = nk[0];
            int k = nk[1];
            short[] w = randomBf16(rnd, n * k, 0.05);
            int maxRows = 70;
            float[] x = KdaInputs.normal(rnd, maxRows * k);
            double[] expected = new double[maxRows * n];
            for (int r = 0; r < maxRows; r++) {
                for (int c = 0; c < n; c++) {
                    double s = 0;
                    for (int i = 0; i < k; i++) {
                        s += (double) x[r * k + i] * bf16(w[c * k + i]);
                    }
                    expected[r * n + c] = s;
                }
            }
            try (DeviceBuffer dw = DeviceBuffer.of(device, w); DeviceBuffer dx = DeviceBuffer.of(device, x);
                 DeviceBuffer dy = DeviceBuffer.allocate(device, 4L * maxRows * n)) {
                for (String name : variantNames()) {
                    float[] alone = null;
                    for (int m : new int[]{1, 3, 8, 13, 40, 70}) {
                        dy.fill(Float.NaN);
                        run(tiled, engine, name, dx, k, dw, dy, n, m, n, k, false);
                        float[] y = new float[m * n];
                        dy.download(y);
                        for (int i = 0; i < y.length; i++) {
                            double tol = 1e-4 * (1 + Math.abs(expected[i]));
                            assertTrue(Math.abs(y[i] - expected[i]) <= tol, name + " m=" + m + " n=" + n + " k=" + k + " at " + i + ": "
                                    + y[i] + " vs " + expected[i]);
                        }
                        if (m == 1) {
                            alone = Arrays.copyOf(y, n);
                        } else {
                            assertArrayEquals(alone, Arrays.copyOf(y, n), name + ": row 0 of a batch of " + m + " = the row alone");
                        }
                    }
                    run(tiled, engine, name, dx, k, dw, dy, n, 3, n, k, true);   // accumulate: y = 2 x the product
                    float[] twice = new float[3 * n];
                    dy.download(twice);
                    for (int i = 0; i < twice.length; i++) {
                        assertEquals(2 * expected[i], twice[i], 2e-4 * (1 + Math.abs(expected[i])), name + " accumulate at " + i);
                    }
                }
            }
        }
    }

    /** A gated GEMV (SwiGLU of gate|up applied on load) = the swiglu kernel, then the plain GEMV, bit for bit. */
    @Test
    void swigluOnLoadEqualsTheSwigluKernel() {
        GemvKernel tiled = new GemvKernel(device, module("gemv"));
        EngineKernels engine = new EngineKernels(device, module("engine"));
        SplittableRandom rnd = new SplittableRandom(8);
        for (int[] nk : new int[][]{{40, 64}, {300, 1024}, {129, 1536}, {7, 9216}}) {
            int n = nk[0];
            int k = nk[1];
            int maxRows = 9;
            short[] w = randomBf16(rnd, n * k, 0.05);
            float[] gateUp = KdaInputs.normal(rnd, maxRows * 2 * k);
            try (DeviceBuffer dw = DeviceBuffer.of(device, w); DeviceBuffer dgu = DeviceBuffer.of(device, gateUp);
                 DeviceBuffer act = DeviceBuffer.allocate(device, 4L * maxRows * k);
                 DeviceBuffer y = DeviceBuffer.allocate(device, 4L * maxRows * n); DeviceBuffer z = DeviceBuffer.allocate(device, 4L * maxRows * n)) {
                for (String name : variantNames()) {
                    if (k % 8 != 0 || name.equals("tc") || name.equals("warp")) {
                        continue;                                  // fp32 tilings only (k % 8 == 0); the others take swiglu's output
                    }
                    for (int m : new int[]{1, 3, 9}) {
                        if (!GemvKernel.swigluFits(m, k)) {
                            continue;
                        }
                        y.fill(Float.NaN);
                        z.fill(Float.NaN);
                        engine.swiglu(m, dgu, 2 * k, act, k, k);
                        run(tiled, engine, name, act, k, dw, y, n, m, n, k, false);
                        tiled.launch(GemvKernel.variant(name), dgu, 2 * k, dw, z, n, m, n, k, false, true);
                        float[] expected = new float[m * n];
                        float[] actual = new float[m * n];
                        y.download(expected);
                        z.download(actual);
                        assertArrayEquals(expected, actual, name + " gated m=" + m + " n=" + n + " k=" + k);
                    }
                }
            }
        }
    }

    private static java.util.List<String> variantNames() {
        java.util.List<String> names = new java.util.ArrayList<>();
        names.add("warp");
        GemvKernel.VARIANTS.forEach(v -> names.add(v.name()));
        return names;
    }

    private static void run(GemvKernel tiled, EngineKernels engine, String name, DeviceBuffer x, int ldx, DeviceBuffer w, DeviceBuffer y,
                            int ldy, int m, int n, int k, boolean accumulate) {
        if (name.equals("warp")) {
            engine.gemv(x, ldx, w, y, ldy, m, n, k, accumulate);
        } else {
            tiled.launch(GemvKernel.variant(name), x, ldx, w, y, ldy, m, n, k, accumulate);
        }
    }
}
