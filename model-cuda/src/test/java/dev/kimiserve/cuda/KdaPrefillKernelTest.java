package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.cpu.KdaCore;
import dev.kimiserve.core.testing.Assertions2;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Chunked KDA prefill on the GPU against the cpu backend's chunked form, varlen, two calls in a row. */
class KdaPrefillKernelTest extends GpuTest {
    static final int D = KdaPrefillKernel.HEAD_DIM;

    /** Relative RMS error of got against want over elements [from, to). */
    static double relRms(float[] want, float[] got, int from, int to) {
        return Assertions2.relRms(Arrays.copyOfRange(want, from, to), Arrays.copyOfRange(got, from, to));
    }

    /**
     * Lengths 1, 63, 64, 65 and 1000 in one batch (chunk edges and a long one), ordinary and very strong decay, the
     * state carried into a second call; outputs and scratch poisoned; slots outside the batch untouched.
     */
    @Test
    void matchesTheCpuChunkedFormAcrossCalls() {
        int[] lengths = {1, 63, 64, 65, 1000};
        int heads = 3;
        int batch = lengths.length;
        KdaPrefillKernel kernel = new KdaPrefillKernel(device, module("kda_prefill"));
        for (double decayScale : new double[]{1, 30}) {
            SplittableRandom rnd = new SplittableRandom((long) decayScale);
            int poolSlots = batch + 2;
            int[] slots = {6, 0, 4, 2, 5};
            int slotFloats = heads * D * D;
            float[] pool = KdaInputs.normal(rnd, poolSlots * slotFloats);
            for (int i = 0; i < pool.length; i++) {
                pool[i] *= 0.1f;
            }
            float[] cpuPool = pool.clone();
            try (KdaPrefillKernel.Plan plan = new KdaPrefillKernel.Plan(device, lengths); DeviceBuffer dPool = DeviceBuffer.of(device, pool);
                 DeviceBuffer dSlots = DeviceBuffer.of(device, slots);
                 DeviceBuffer scratch = DeviceBuffer.allocate(device, KdaPrefillKernel.scratchBytes(plan, heads))) {
                int t = plan.tokens();
                for (int call = 0; call < 2; call++) {
                    float[] q = KdaInputs.unitRows(rnd, t * heads, D, (float) (1 / Math.sqrt(D)));
                    float[] k = KdaInputs.unitRows(rnd, t * heads, D, 1f);
                    float[] v = KdaInputs.normal(rnd, t * heads * D);
                    float[] g = KdaInputs.logDecay(rnd, t * heads * D);
                    for (int i = 0; i < g.length; i++) {
                        g[i] *= (float) decayScale;
                    }
                    float[] beta = KdaInputs.uniform(rnd, t * heads);
                    float[] want = new float[t * heads * D];
                    int row0 = 0;
                    for (int b = 0; b < batch; b++) {
                        float[] s = Arrays.copyOfRange(cpuPool, slots[b] * slotFloats, (slots[b] + 1) * slotFloats);
                        KdaCore.chunked(q, k, v, g, beta, row0, lengths[b], heads, D, D, s, want);
                        System.arraycopy(s, 0, cpuPool, slots[b] * slotFloats, slotFloats);
                        row0 += lengths[b];
                    }
                    try (DeviceBuffer dq = DeviceBuffer.of(device, q); DeviceBuffer dk = DeviceBuffer.of(device, k);
                         DeviceBuffer dv = DeviceBuffer.of(device, v); DeviceBuffer dg = DeviceBuffer.of(device, g);
                         DeviceBuffer db = DeviceBuffer.of(device, beta); DeviceBuffer dOut = DeviceBuffer.allocate(device, 4L * t * heads * D)) {
                        dOut.fill(Float.NaN);
                        scratch.fill(Float.NaN);
                        kernel.launch(plan, heads, dq, dk, dv, dg, db, dSlots, dPool, scratch, dOut);
                        device.synchronize();
                        float[] got = new float[want.length];
                        dOut.download(got);
                        row0 = 0;
                        for (int b = 0; b < batch; b++) {
                            double err = relRms(want, got, row0 * heads * D, (row0 + lengths[b]) * heads * D);
                            assertTrue(err < 1e-4, "decay x" + decayScale + " call " + call + " sequence " + b + " (" + lengths[b]
                                    + " tokens): output rel RMS " + err);
                            row0 += lengths[b];
                        }
                    }
                }
                assertStatePool(pool, cpuPool, dPool, slots, slotFloats, 1e-4, "decay x" + decayScale);
            }
        }
    }
}
