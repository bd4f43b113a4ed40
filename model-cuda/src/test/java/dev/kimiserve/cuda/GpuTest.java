package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.testing.Assertions2;
import dev.kimiserve.core.tools.RandomCheckpoint;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;

/**
 * Base of the GPU tests: tagged {@code gpu} (excluded by default), one device per test class, kernel modules loaded
 * once, and each test skipped with the reason when this machine has no usable CUDA device.
 */
@Tag("gpu")
abstract class GpuTest {
    static final String UNAVAILABLE = CudaDevice.unavailableReason();
    static CudaDevice device;
    private static final Map<String, CudaModule> MODULES = new HashMap<>();

    @BeforeAll
    static void openDevice() {
        if (UNAVAILABLE == null) {
            device = CudaDevice.open(0);
        }
    }

    @AfterAll
    static void closeDevice() {
        MODULES.values().forEach(CudaModule::close);
        MODULES.clear();
        if (device != null) {
            device.close();
            device = null;
        }
    }

    @BeforeEach
    void needsAGpu() {
        Assumptions.assumeTrue(UNAVAILABLE == null, "skipped, no CUDA device here: " + UNAVAILABLE);
    }

    /** The kernel image {@code name}, loaded once per test class. */
    static CudaModule module(String name) {
        return MODULES.computeIfAbsent(name, n -> new CudaModule(device, n));
    }

    /**
     * A state pool after a kernel: the slots in the batch match the cpu's pool within {@code tolerance} relative RMS,
     * every other slot is bit-identical to {@code before}.
     */
    static void assertStatePool(float[] before, float[] cpuPool, DeviceBuffer pool, int[] slots, int slotFloats, double tolerance,
                                String label) {
        float[] gotPool = new float[before.length];
        pool.download(gotPool);
        for (int slot = 0; slot < before.length / slotFloats; slot++) {
            float[] want = Arrays.copyOfRange(cpuPool, slot * slotFloats, (slot + 1) * slotFloats);
            float[] got = Arrays.copyOfRange(gotPool, slot * slotFloats, (slot + 1) * slotFloats);
            int s = slot;
            if (Arrays.stream(slots).anyMatch(x -> x == s)) {
                double err = Assertions2.relRms(want, got);
                assertTrue(err < tolerance, label + " slot " + slot + ": state rel RMS " + err);
            } else {
                assertArrayEquals(Arrays.copyOfRange(before, slot * slotFloats, (slot + 1) * slotFloats), got,
                        label + " slot " + slot + " is not in the batch and must be untouched");
            }
        }
    }

    static float bf16(short s) {
        return Float.intBitsToFloat(s << 16);
    }

    static short[] randomBf16(SplittableRandom rnd, int n, double scale) {
        short[] x = new short[n];
        for (int i = 0; i < n; i++) {
            x[i] = RandomCheckpoint.toBf16((float) (rnd.nextGaussian() * scale));
        }
        return x;
    }
}
