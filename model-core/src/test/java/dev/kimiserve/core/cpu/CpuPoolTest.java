package dev.kimiserve.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** Every index of a region runs exactly once, whatever the split and stealing; failures reach the caller. */
class CpuPoolTest {
    @Test
    void everyIndexRunsExactlyOnce() {
        try (CpuPool pool = new CpuPool(4)) {
            for (int n : new int[]{1, 3, 4, 5, 17, 1000}) {
                for (int grain : new int[]{1, 3, 64}) {
                    AtomicIntegerArray hits = new AtomicIntegerArray(n);
                    pool.forRange(n, grain, (from, to) -> {
                        for (int i = from; i < to; i++) {
                            hits.incrementAndGet(i);
                            if (i % 7 == 0) {
                                busy(2000);
                            }
                        }
                    });
                    for (int i = 0; i < n; i++) {
                        assertEquals(1, hits.get(i), "index " + i + " of " + n + " grain " + grain);
                    }
                }
            }
        }
    }

    @Test
    void nestedRegionsRunInlineAndFailuresPropagate() {
        try (CpuPool pool = new CpuPool(3)) {
            AtomicIntegerArray hits = new AtomicIntegerArray(12);
            pool.forRange(3, 1, (a, b) -> pool.forRange(4, 1, (c, d) -> {
                for (int i = c; i < d; i++) {
                    hits.incrementAndGet(a * 4 + i);
                }
            }));
            for (int i = 0; i < 12; i++) {
                assertEquals(1, hits.get(i));
            }
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.forRange(100, 1, (a, b) -> {
                if (a == 57) {
                    throw new IllegalStateException("item 57");
                }
            }));
            assertEquals("item 57", e.getMessage());
            AtomicIntegerArray after = new AtomicIntegerArray(10);
            pool.forRange(10, 1, (a, b) -> after.incrementAndGet(a));
            for (int i = 0; i < 10; i++) {
                assertEquals(1, after.get(i), "pool still works after a failure");
            }
        }
    }

    private static void busy(long nanos) {
        long t0 = System.nanoTime();
        while (System.nanoTime() - t0 < nanos) {
            Thread.onSpinWait();
        }
    }
}
