package dev.kimiserve.core.testing;

import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.tools.RandomCheckpoint;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/** In-memory tensors for kernel tests. */
public final class Tensors {
    private Tensors() {
    }

    /** A random tensor of the given dtype (values uniform in [-1, 1) scaled by 1/sqrt(cols), rounded to the dtype). */
    public static Tensor random(String name, DType dtype, SplittableRandom rnd, long... shape) {
        long n = Tensor.numel(shape);
        double scale = 1.0 / Math.sqrt(shape[shape.length - 1]);
        MemorySegment seg = Arena.ofAuto().allocate(n * dtype.byteSize(), 64);
        for (long i = 0; i < n; i++) {
            float v = (float) ((2 * rnd.nextDouble() - 1) * scale);
            switch (dtype) {
                case BF16 -> seg.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i * 2, RandomCheckpoint.toBf16(v));
                case F16 -> seg.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i * 2, Float.floatToFloat16(v));
                case F32 -> seg.set(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i * 4, v);
                default -> throw new IllegalArgumentException(dtype.toString());
            }
        }
        return new Tensor(name, dtype, shape, seg);
    }
}
