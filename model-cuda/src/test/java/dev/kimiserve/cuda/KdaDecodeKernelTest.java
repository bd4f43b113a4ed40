package dev.kimiserve.cuda;

import static dev.kimiserve.core.testing.Assertions2.relRms;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.cpu.KdaCore;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** kda_decode on the GPU against the cpu backend's recurrence, on random inputs. */
class KdaDecodeKernelTest extends GpuTest {
    static final int D = KdaDecodeKernel.HEAD_DIM;

    /**
     * B sequences in scattered slots of a larger pool, three steps in a row (the state carries over), strong decay in
     * some channels; outputs poisoned with NaN before each launch; slots outside the batch must not change by a bit.
     */
    static java.util.stream.Stream<KdaDecodeKernel.Variant> variants() {
        return KdaDecodeKernel.VARIANTS.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void matchesTheCpuRecurrenceAndTouchesOnlyItsSlots(KdaDecodeKernel.Variant variant) {
        for (int[] shape : new int[][]{{1, 32}, {5, 4}, {64, 2}}) {
            int batch = shape[0];
            int heads = shape[1];
            SplittableRandom rnd = new SplittableRandom(batch * 131L + heads);
            int poolSlots = batch * 2 + 1;
            int[] slots = new int[batch];
            for (int b = 0; b < batch; b++) {
                slots[b] = (b * 7 + 3) % poolSlots;                    // scattered, distinct for these sizes
            }
            assertTrue(Arrays.stream(slots).distinct().count() == batch);
            int slotFloats = heads * D * D;
            float[] pool = KdaInputs.normal(rnd, poolSlots * slotFloats);
            float[] cpuPool = pool.clone();
            KdaDecodeKernel kernel = new KdaDecodeKernel(device, module("kda_decode"), variant, false);
            try (DeviceBuffer dPool = DeviceBuffer.of(device, pool); DeviceBuffer dSlots = DeviceBuffer.of(device, slots);
                 DeviceBuffer dOut = DeviceBuffer.allocate(device, 4L * batch * heads * D)) {
                for (int step = 0; step < 3; step++) {
                    float[] q = KdaInputs.unitRows(rnd, batch * heads, D, (float) (1 / Math.sqrt(D)));
                    float[] k = KdaInputs.unitRows(rnd, batch * heads, D, 1f);
                    float[] v = KdaInputs.normal(rnd, batch * heads * D);
                    float[] g = KdaInputs.logDecay(rnd, batch * heads * D);
                    float[] beta = KdaInputs.uniform(rnd, batch * heads);
                    float[] want = new float[batch * heads * D];
                    for (int b = 0; b < batch; b++) {
                        float[] s = Arrays.copyOfRange(cpuPool, slots[b] * slotFloats, (slots[b] + 1) * slotFloats);
                        KdaCore.recurrent(q, k, v, g, beta, b, 1, heads, D, D, s, want);
                        System.arraycopy(s, 0, cpuPool, slots[b] * slotFloats, slotFloats);
                    }
                    try (DeviceBuffer dq = DeviceBuffer.of(device, q); DeviceBuffer dk = DeviceBuffer.of(device, k);
                         DeviceBuffer dv = DeviceBuffer.of(device, v); DeviceBuffer dg = DeviceBuffer.of(device, g);
                         DeviceBuffer db = DeviceBuffer.of(device, beta)) {
                        dOut.fill(Float.NaN);
                        kernel.launch(batch, heads, dq, dk, dv, dg, db, dSlots, dPool, dOut);
                        device.synchronize();
                    }
                    float[] got = new float[want.length];
                    dOut.download(got);
                    double err = relRms(want, got);
                    assertTrue(err < 1e-5, "B=" + batch + " H=" + heads + " step " + step + ": output rel RMS " + err);
                }
                assertStatePool(pool, cpuPool, dPool, slots, slotFloats, 1e-5, "B=" + batch + " H=" + heads);
            }
        }
    }
}
