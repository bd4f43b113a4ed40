package dev.kimiserve.core.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A read-only, row-major view of one tensor's bytes (usually a slice of a memory-mapped safetensors file).
 * Values are little-endian as the safetensors format stores them. Nothing is copied: {@link #getFloat(long)}
 * decodes one element, {@link #toFloatArray()} makes an fp32 copy for small tensors (norm weights, biases).
 */
public final class Tensor {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String name;
    private final DType dtype;
    private final long[] shape;
    private final MemorySegment data;

    public Tensor(String name, DType dtype, long[] shape, MemorySegment data) {
        this.name = name;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.data = data;
        long expected = numel(shape) * dtype.byteSize();
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + data.byteSize() + " bytes for shape "
                    + Arrays.toString(shape) + " of " + dtype + " (expected " + expected + ")");
        }
    }

    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public String name() {
        return name;
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long dim(int i) {
        return shape[i];
    }

    public long numel() {
        return numel(shape);
    }

    public MemorySegment data() {
        return data;
    }

    /** Element {@code i} of the flattened tensor as a float (floating-point and integer dtypes). */
    public float getFloat(long i) {
        return switch (dtype) {
            case BF16 -> Float.intBitsToFloat((data.get(SHORT, i * 2) & 0xFFFF) << 16);
            case F16 -> Float.float16ToFloat(data.get(SHORT, i * 2));
            case F32 -> data.get(FLOAT, i * 4);
            case F64 -> (float) data.get(DOUBLE, i * 8);
            case I64 -> data.get(LONG, i * 8);
            case I32 -> data.get(INT, i * 4);
            default -> throw new UnsupportedOperationException("tensor '" + name + "': dtype " + dtype + " is not read as numbers");
        };
    }

    /** Element {@code i} of an integer tensor (I64, I32). */
    public long getLong(long i) {
        return switch (dtype) {
            case I64 -> data.get(LONG, i * 8);
            case I32 -> data.get(INT, i * 4);
            default -> throw new UnsupportedOperationException("tensor '" + name + "': dtype " + dtype + " is not an integer type");
        };
    }

    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor '" + name + "' has " + n + " elements: too many for a Java array");
        }
        float[] out = new float[(int) n];
        for (int i = 0; i < out.length; i++) {
            out[i] = getFloat(i);
        }
        return out;
    }

    public long[] toLongArray() {
        long[] out = new long[Math.toIntExact(numel())];
        for (int i = 0; i < out.length; i++) {
            out[i] = getLong(i);
        }
        return out;
    }

    /** Rows {@code [from, to)} along the first dimension, as a view with its own name. */
    public Tensor slice(String viewName, long from, long to) {
        if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
            throw new IndexOutOfBoundsException("tensor '" + name + "': rows [" + from + ", " + to + ") of " + Arrays.toString(shape));
        }
        long rowBytes = numel(shape) / Math.max(1, shape[0]) * dtype.byteSize();
        long[] s = shape.clone();
        s[0] = to - from;
        return new Tensor(viewName, dtype, s, data.asSlice(from * rowBytes, (to - from) * rowBytes));
    }

    /** The same bytes with another shape of equal element count. */
    public Tensor reshape(long... newShape) {
        if (numel(newShape) != numel()) {
            throw new IllegalArgumentException("tensor '" + name + "': cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
        }
        return new Tensor(name, dtype, newShape, data);
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
