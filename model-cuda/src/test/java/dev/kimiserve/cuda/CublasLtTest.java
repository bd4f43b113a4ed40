package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** cuBLASLt through FFM: Y = X W^T against a double-precision product of the same bf16 values. */
class CublasLtTest extends GpuTest {
    static final String NO_CUBLAS = CublasLt.unavailableReason();
    static CublasLt blas;

    @BeforeAll
    static void open() {
        if (UNAVAILABLE == null && NO_CUBLAS == null) {
            blas = new CublasLt(device);
        }
    }

    @AfterAll
    static void close() {
        if (blas != null) {
            blas.close();
            blas = null;
        }
    }

    @BeforeEach
    void needsCublas() {
        Assumptions.assumeTrue(NO_CUBLAS == null, "skipped: " + NO_CUBLAS);
    }

    @Test
    void bf16ProductsMatchTheReferenceForOddShapes() {
        for (int[] mnk : new int[][]{{1, 256, 512}, {5, 384, 1000}, {64, 520, 2304}, {300, 96, 72}}) {
            int m = mnk[0];
            int n = mnk[1];
            int k = mnk[2];
            SplittableRandom rnd = new SplittableRandom(m * 1000L + n + k);
            short[] x = randomBf16(rnd, m * k, 1.0);
            short[] w = randomBf16(rnd, n * k, 0.05);
            double[] want = new double[m * n];
            for (int r = 0; r < m; r++) {
                for (int c = 0; c < n; c++) {
                    double acc = 0;
                    for (int i = 0; i < k; i++) {
                        acc += (double) bf16(x[r * k + i]) * bf16(w[c * k + i]);
                    }
                    want[r * n + c] = acc;
                }
            }
            try (DeviceBuffer dx = DeviceBuffer.of(device, x); DeviceBuffer dw = DeviceBuffer.of(device, w);
                 DeviceBuffer f32 = DeviceBuffer.allocate(device, 4L * m * n); DeviceBuffer b16 = DeviceBuffer.allocate(device, 2L * m * n)) {
                f32.fill(Float.NaN);
                b16.fill(Float.NaN);
                blas.matmul(dx, dw, f32, m, n, k, CublasLt.Out.F32);
                blas.matmul(dx, dw, b16, m, n, k, CublasLt.Out.BF16);
                device.synchronize();
                float[] got = new float[m * n];
                f32.download(got);
                short[] gotB = new short[m * n];
                b16.download(gotB);
                double e32 = 0;
                double e16 = 0;
                double den = 0;
                for (int i = 0; i < got.length; i++) {
                    e32 += (got[i] - want[i]) * (got[i] - want[i]);
                    e16 += (bf16(gotB[i]) - want[i]) * (bf16(gotB[i]) - want[i]);
                    den += want[i] * want[i];
                }
                double r32 = Math.sqrt(e32 / den);
                double r16 = Math.sqrt(e16 / den);
                String shape = m + "x" + n + "x" + k;
                assertTrue(r32 < 1e-5, shape + " fp32 out: rel RMS " + r32);
                assertTrue(r16 < 5e-3, shape + " bf16 out: rel RMS " + r16);
            }
        }
    }
}
