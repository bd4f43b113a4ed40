package dev.kimiserve.core.cpu;

import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix [rows, cols] ready for the vector kernels. BF16 weights are used in place from the mapped checkpoint
 * (zero copy). F32 and F16 weights are copied once into fp32 rows in the same "paired" element order the bf16 kernel
 * produces, so one activation layout serves both (see {@link Vec#pairOrder}).
 */
public final class WeightMatrix {
    final String name;
    final int rows;
    final int cols;
    /** bf16 in place, or null. */
    final MemorySegment bf16;
    /** fp32 copy in paired order [rows][cols] starting at f32Off, or null. */
    final float[] f32;
    final int f32Off;

    private WeightMatrix(String name, int rows, int cols, MemorySegment bf16, float[] f32, int f32Off) {
        this.name = name;
        this.rows = rows;
        this.cols = cols;
        this.bf16 = bf16;
        this.f32 = f32;
        this.f32Off = f32Off;
    }

    /** Rows [from, to) as a matrix of their own (no copy). */
    public WeightMatrix rows(int from, int to) {
        if (from < 0 || to > rows || from >= to) {
            throw new IndexOutOfBoundsException(name + ": rows [" + from + ", " + to + ") of " + rows);
        }
        String n = name + "[" + from + ":" + to + "]";
        if (bf16 != null) {
            return new WeightMatrix(n, to - from, cols, bf16.asSlice(2L * from * cols, 2L * (to - from) * cols), null, 0);
        }
        return new WeightMatrix(n, to - from, cols, null, f32, f32Off + from * cols);
    }

    public static WeightMatrix of(Tensor t) {
        if (t.rank() != 2) {
            throw new IllegalArgumentException(t.name() + ": a weight matrix must be 2-D, got " + t);
        }
        int rows = Math.toIntExact(t.dim(0));
        int cols = Math.toIntExact(t.dim(1));
        if (t.dtype() == DType.BF16) {
            return new WeightMatrix(t.name(), rows, cols, t.data(), null, 0);
        }
        if ((long) rows * cols > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(t.name() + ": " + t.dtype() + " matrix too large to convert; store it as BF16");
        }
        float[] f = new float[rows * cols];
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                row[c] = t.getFloat((long) r * cols + c);
            }
            Vec.pairOrder(row, 0, cols, f, r * cols);
        }
        return new WeightMatrix(t.name(), rows, cols, null, f, 0);
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /** Element [r][c] (slow path for tails and absorbed attention). */
    float get(int r, int c) {
        long idx = (long) r * cols + c;
        if (bf16 != null) {
            return Float.intBitsToFloat((bf16.get(Vec.SHORT_LE, idx * 2) & 0xFFFF) << 16);
        }
        return f32[f32Off + r * cols + Vec.pairedIndex(c, cols)];
    }

    public long byteSize() {
        return (long) rows * cols * (bf16 != null ? 2 : 4);
    }
}
