package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * engine.cu's fused decode step (kda_step_decode) against the two launches it replaces, kda_conv_prep_decode and then
 * kda_decode (both of its K = V = 128 tilings with 8 row groups): the same sums, so the outputs, the recurrent states and
 * the conv windows must agree bit for bit, and slots outside the batch must not change. Random inputs with strong decay
 * in some heads, scattered slots, three steps in a row (state and windows carry over), outputs poisoned with NaN.
 */
class KdaStepDecodeTest extends GpuTest {
    static final int D = KdaDecodeKernel.HEAD_DIM;

    @Test
    void equalsConvPrepThenKdaDecodeBitForBit() {
        for (int[] shape : new int[][]{{1, 32, 3}, {5, 4, 3}, {40, 2, 7}, {3, 3, 0}}) {
            for (KdaDecodeKernel.Variant variant : new KdaDecodeKernel.Variant[]{KdaDecodeKernel.V1X8, KdaDecodeKernel.V4X8}) {
                check(shape[0], shape[1], shape[2], variant);
            }
        }
    }

    private void check(int batch, int heads, int width, KdaDecodeKernel.Variant variant) {
        String label = "B=" + batch + " H=" + heads + " W=" + width + " against " + variant.entry();
        SplittableRandom rnd = new SplittableRandom(batch * 977L + heads * 31L + width);
        int c = heads * D;
        int ldp = 3 * c + 2 * D + heads + 4;                   // q|k|v | f_a | g_a | b | padding, as the stacked projection
        int poolSlots = batch * 2 + 3;                         // not a multiple of 7: the slots below are distinct
        int[] slots = new int[batch];
        for (int b = 0; b < batch; b++) {
            slots[b] = (b * 7 + 3) % poolSlots;
        }
        assertTrue(Arrays.stream(slots).distinct().count() == batch, label + ": slots " + Arrays.toString(slots) + " repeat");
        float[] states = KdaInputs.normal(rnd, poolSlots * heads * D * D);
        float[] windows = KdaInputs.normal(rnd, poolSlots * 3 * c * Math.max(width, 1));
        float[] taps = KdaInputs.normal(rnd, 3 * c * (width + 1));
        float[] aLog = new float[heads];
        for (int h = 0; h < heads; h++) {
            aLog[h] = h % 3 == 0 ? 3.4f : (float) rnd.nextDouble(-1, 1);   // exp(3.4) ~ 30: strong decay in every third head
        }
        float[] dtBias = KdaInputs.normal(rnd, c);
        EngineKernels kernels = new EngineKernels(device, module("engine"));
        KdaDecodeKernel decode = new KdaDecodeKernel(device, module("kda_decode"), variant, false);
        try (DeviceBuffer dSlots = DeviceBuffer.of(device, slots); DeviceBuffer dTaps = DeviceBuffer.of(device, taps);
             DeviceBuffer dALog = DeviceBuffer.of(device, aLog); DeviceBuffer dDtBias = DeviceBuffer.of(device, dtBias);
             DeviceBuffer fusedStates = DeviceBuffer.of(device, states); DeviceBuffer fusedWindows = DeviceBuffer.of(device, windows);
             DeviceBuffer pairStates = DeviceBuffer.of(device, states); DeviceBuffer pairWindows = DeviceBuffer.of(device, windows);
             DeviceBuffer q = DeviceBuffer.allocate(device, 4L * batch * c); DeviceBuffer k = DeviceBuffer.allocate(device, 4L * batch * c);
             DeviceBuffer v = DeviceBuffer.allocate(device, 4L * batch * c); DeviceBuffer g = DeviceBuffer.allocate(device, 4L * batch * c);
             DeviceBuffer beta = DeviceBuffer.allocate(device, 4L * batch * heads);
             DeviceBuffer fusedOut = DeviceBuffer.allocate(device, 4L * batch * c); DeviceBuffer pairOut = DeviceBuffer.allocate(device, 4L * batch * c)) {
            for (int step = 0; step < 3; step++) {
                float[] pre = KdaInputs.normal(rnd, batch * ldp);
                float[] gRaw = KdaInputs.normal(rnd, batch * c);
                for (int i = 0; i < gRaw.length; i++) {
                    gRaw[i] *= 3f;
                }
                try (DeviceBuffer dPre = DeviceBuffer.of(device, pre); DeviceBuffer dGRaw = DeviceBuffer.of(device, gRaw)) {
                    DeviceBuffer betaRaw = dPre.slice(4L * (3 * c + 2 * D), dPre.bytes() - 4L * (3 * c + 2 * D));
                    fusedOut.fill(Float.NaN);
                    pairOut.fill(Float.NaN);
                    kernels.kdaStepDecode(batch, heads, dPre, ldp, dTaps, fusedWindows, dSlots, dGRaw, c, betaRaw, ldp, dALog, dDtBias, fusedStates,
                            fusedOut, width);
                    kernels.kdaConvPrepDecode(batch, heads, dPre, ldp, dTaps, pairWindows, dSlots, dGRaw, c, betaRaw, ldp, dALog, dDtBias, q, k, v,
                            g, beta, D, width);
                    decode.launch(batch, heads, q, k, v, g, beta, dSlots, pairStates, pairOut);
                    device.synchronize();
                }
                float[] fused = new float[batch * c];
                float[] pair = new float[batch * c];
                fusedOut.download(fused);
                pairOut.download(pair);
                assertTrue(Arrays.stream(toDoubles(fused)).allMatch(Double::isFinite), label + " step " + step + ": unwritten or non-finite outputs");
                assertArrayEquals(pair, fused, label + " step " + step + ": outputs");
            }
            assertPoolsEqual(states, pairStates, fusedStates, slots, heads * D * D, label + ": recurrent states");
            assertPoolsEqual(windows, pairWindows, fusedWindows, slots, 3 * c * width, label + ": conv windows");
        }
    }

    /** The fused pool equals the two-launch pool everywhere, and slots outside the batch still hold {@code before}. */
    private static void assertPoolsEqual(float[] before, DeviceBuffer pairPool, DeviceBuffer fusedPool, int[] slots, int slotFloats, String label) {
        float[] pair = new float[before.length];
        float[] fused = new float[before.length];
        pairPool.download(pair);
        fusedPool.download(fused);
        assertArrayEquals(pair, fused, label);
        if (slotFloats == 0) {
            return;
        }
        for (int slot = 0; slot < before.length / slotFloats; slot++) {
            int s = slot;
            if (Arrays.stream(slots).noneMatch(x -> x == s)) {
                assertArrayEquals(Arrays.copyOfRange(before, slot * slotFloats, (slot + 1) * slotFloats),
                        Arrays.copyOfRange(fused, slot * slotFloats, (slot + 1) * slotFloats), label + ": slot " + slot + " is not in the batch");
            }
        }
    }

    private static double[] toDoubles(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }
}
