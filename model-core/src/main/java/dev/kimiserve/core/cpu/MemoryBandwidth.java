package dev.kimiserve.core.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A STREAM-like read bandwidth measurement in this JVM: threads sum disjoint parts of an off-heap buffer far larger
 * than the caches with vector loads. The best of several passes is the machine's practical read ceiling, the
 * denominator of the decode roofline.
 */
public final class MemoryBandwidth {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private MemoryBandwidth() {
    }

    /** Bytes per second read, best of {@code passes}. */
    public static double measureReadBytesPerSecond(long bufferBytes, int threads, int passes) {
        try (Arena arena = Arena.ofShared(); ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            long block = 4L * F.length() * threads;
            long floats = bufferBytes / 4 / block * block;
            MemorySegment seg = arena.allocate(floats * 4, 64);
            for (long i = 0; i < floats; i += 1024) {
                seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, 1f);
            }
            double best = 0;
            double[] sink = new double[1];
            // warm the summing loop up on a cache-sized slice first, so that every timed pass runs compiled code
            for (int i = 0; i < 2000; i++) {
                sink[0] += sum(seg, 0, Math.min(floats, 1 << 16));
            }
            for (int p = 0; p < passes; p++) {
                long per = floats / threads;
                List<Future<Float>> parts = new ArrayList<>();
                long t0 = System.nanoTime();
                for (int t = 0; t < threads; t++) {
                    long from = t * per;
                    parts.add(pool.submit(() -> sum(seg, from, per)));
                }
                for (Future<Float> f : parts) {
                    sink[0] += f.get();
                }
                long dt = System.nanoTime() - t0;
                best = Math.max(best, floats * 4.0 / (dt / 1e9));
            }
            if (sink[0] == 42) {
                System.out.print("");
            }
            return best;
        } catch (Exception e) {
            throw new IllegalStateException("bandwidth measurement failed", e);
        }
    }

    private static float sum(MemorySegment seg, long from, long count) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int l = F.length();
        long end = (from + count) * 4;
        for (long off = from * 4; off < end; off += 16L * l) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, seg, off, ByteOrder.nativeOrder()));
            a1 = a1.add(FloatVector.fromMemorySegment(F, seg, off + 4L * l, ByteOrder.nativeOrder()));
            a2 = a2.add(FloatVector.fromMemorySegment(F, seg, off + 8L * l, ByteOrder.nativeOrder()));
            a3 = a3.add(FloatVector.fromMemorySegment(F, seg, off + 12L * l, ByteOrder.nativeOrder()));
        }
        return a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
    }
}
