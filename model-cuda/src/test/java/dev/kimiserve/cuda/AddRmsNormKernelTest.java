package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * engine.cu's add_rms_norm against a double-precision reference, without a delta, with one and with one plus the
 * routed experts' weighted outputs (MoE's combine), for widths below, at and past the values a thread holds in registers
 * (1024 threads x 4): h += delta (+ sum of weight * expert output, fused multiply-adds in slot order) in place, exactly;
 * y = w * rmsnorm(h), y poisoned first; without a delta h stays bit-identical.
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
        int topk = 3;
        float[] pairs = KdaInputs.normal(rnd, rows * topk * dim);
        float[] pairWeights = KdaInputs.normal(rnd, rows * topk);
        for (String mode : new String[]{"none", "delta", "delta+experts"}) {
            boolean withDelta = !mode.equals("none");
            boolean withExperts = mode.equals("delta+experts");
            try (DeviceBuffer dh = DeviceBuffer.of(device, h); DeviceBuffer dd = DeviceBuffer.of(device, delta);
                 DeviceBuffer dp = DeviceBuffer.of(device, pairs); DeviceBuffer dpw = DeviceBuffer.of(device, pairWeights);
                 DeviceBuffer dw = DeviceBuffer.of(device, w); DeviceBuffer dy = DeviceBuffer.allocate(device, 4L * rows * dim)) {
                dy.fill(Float.NaN);
                kernels.addRmsNorm(rows, dh, dim, withDelta ? dd : null, withExperts ? new EngineKernels.ExpertOutputs(dp, dpw, topk) : null,
                        dw, dy, dim, dim, eps);
                float[] hOut = new float[rows * dim];
                float[] y = new float[rows * dim];
                dh.download(hOut);
                dy.download(y);
                float[] expectedH = h.clone();
                if (withDelta) {
                    for (int i = 0; i < expectedH.length; i++) {
                        int r = i / dim;
                        float sum = delta[i];
                        for (int j = 0; withExperts && j < topk; j++) {
                            sum = Math.fma(pairWeights[r * topk + j], pairs[(r * topk + j) * dim + i % dim], sum);
                        }
                        expectedH[i] = h[i] + sum;
                    }
                }
                assertArrayEquals(expectedH, hOut, "h after the kernel (" + mode + ", dim " + dim + ")");
                for (int r = 0; r < rows; r++) {
                    double ss = 0;
                    for (int i = 0; i < dim; i++) {
                        ss += (double) expectedH[r * dim + i] * expectedH[r * dim + i];
                    }
                    double inv = 1.0 / Math.sqrt(ss / dim + eps);
                    for (int i = 0; i < dim; i++) {
                        double expected = w[i] * (expectedH[r * dim + i] * inv);
                        assertEquals(expected, y[r * dim + i], 1e-5 * (1 + Math.abs(expected)),
                                "y[" + r + "][" + i + "] (" + mode + ", dim " + dim + ")");
                    }
                }
            }
        }
    }
}
