package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * engine.cu's add_rms_norm against a double-precision reference, with and without the residual delta, for widths
 * below, at and past the values a thread holds in registers (1024 threads x 4): h += delta in place, y = w * rmsnorm(h),
 * y poisoned first; without a delta h stays bit-identical.
 */
class AddRmsNormKernelTest extends GpuTest {
    @ParameterizedTest(name = "dim {0}")
    @ValueSource(ints = {40, 2304, 4096, 5000, 9216})
    void matchesTheDoubleNorm(int dim) {
        EngineKernels kernels = new EngineKernels(device, module("engine"));
        SplittableRandom rnd = new SplittableRandom(dim);
        int rows = 3;
        float eps = 1e-6f;
        float[] h = KdaInputs.normal(rnd, rows * dim);
        float[] delta = KdaInputs.normal(rnd, rows * dim);
        float[] w = KdaInputs.normal(rnd, dim);
        for (boolean withDelta : new boolean[]{false, true}) {
            try (DeviceBuffer dh = DeviceBuffer.of(device, h); DeviceBuffer dd = DeviceBuffer.of(device, delta);
                 DeviceBuffer dw = DeviceBuffer.of(device, w); DeviceBuffer dy = DeviceBuffer.allocate(device, 4L * rows * dim)) {
                dy.fill(Float.NaN);
                kernels.addRmsNorm(rows, dh, dim, withDelta ? dd : null, dw, dy, dim, dim, eps);
                float[] hOut = new float[rows * dim];
                float[] y = new float[rows * dim];
                dh.download(hOut);
                dy.download(y);
                float[] expectedH = h.clone();
                if (withDelta) {
                    for (int i = 0; i < expectedH.length; i++) {
                        expectedH[i] = h[i] + delta[i];
                    }
                }
                assertArrayEquals(expectedH, hOut, "h after the kernel (delta " + withDelta + ", dim " + dim + ")");
                for (int r = 0; r < rows; r++) {
                    double ss = 0;
                    for (int i = 0; i < dim; i++) {
                        ss += (double) expectedH[r * dim + i] * expectedH[r * dim + i];
                    }
                    double inv = 1.0 / Math.sqrt(ss / dim + eps);
                    for (int i = 0; i < dim; i++) {
                        double expected = w[i] * (expectedH[r * dim + i] * inv);
                        assertEquals(expected, y[r * dim + i], 1e-5 * (1 + Math.abs(expected)),
                                "y[" + r + "][" + i + "] (delta " + withDelta + ", dim " + dim + ")");
                    }
                }
            }
        }
    }
}
