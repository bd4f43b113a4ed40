package dev.kimiserve.core.cpu;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector species and the bf16 "paired" layout shared by the kernels.
 *
 * <p>A vector of L ints loaded from bf16 memory holds 2L consecutive bf16 values: lane i has element 2i in its low half
 * and element 2i+1 in its high half. Shifting left by 16 gives the even elements as floats, masking the low half gives
 * the odd ones, with no shuffles. Activations are therefore stored in paired order: within each block of 2L elements,
 * first the L even-indexed ones, then the L odd-indexed ones. Elements after the last full block keep natural order.
 */
public final class Vec {
    public static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    public static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    public static final int L = F.length();
    /** bf16 elements per int-vector load. */
    public static final int BLOCK = 2 * L;
    static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private Vec() {
    }

    /** Number of elements covered by full blocks. */
    public static int blocked(int n) {
        return n / BLOCK * BLOCK;
    }

    /** Copies src[from .. from+n) into dst[to ..] in paired order. */
    public static void pairOrder(float[] src, int from, int n, float[] dst, int to) {
        int full = blocked(n);
        for (int b = 0; b < full; b += BLOCK) {
            for (int i = 0; i < L; i++) {
                dst[to + b + i] = src[from + b + 2 * i];
                dst[to + b + L + i] = src[from + b + 2 * i + 1];
            }
        }
        System.arraycopy(src, from + full, dst, to + full, n - full);
    }

    /** Inverse of {@link #pairOrder}. */
    public static void naturalOrder(float[] src, int from, int n, float[] dst, int to) {
        int full = blocked(n);
        for (int b = 0; b < full; b += BLOCK) {
            for (int i = 0; i < L; i++) {
                dst[to + b + 2 * i] = src[from + b + i];
                dst[to + b + 2 * i + 1] = src[from + b + L + i];
            }
        }
        System.arraycopy(src, from + full, dst, to + full, n - full);
    }

    /** Where natural index c of a row of length n sits in paired order. */
    public static int pairedIndex(int c, int n) {
        int full = blocked(n);
        if (c >= full) {
            return c;
        }
        int b = c / BLOCK * BLOCK;
        int o = c - b;
        return b + (o % 2 == 0 ? o / 2 : L + o / 2);
    }

    /** The even elements of a bf16 pair vector, as floats. */
    static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** The odd elements of a bf16 pair vector, as floats. */
    static FloatVector odd(IntVector v) {
        return v.and(0xFFFF0000).reinterpretAsFloats();
    }

    /** Sum of squares of x[off .. off+n). */
    static float sumSquares(float[] x, int off, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            acc = v.fma(v, acc);
        }
        float s = VecMath.sum(acc);
        for (; i < n; i++) {
            s += x[off + i] * x[off + i];
        }
        return s;
    }

    /** Dot product of a[ao .. ao+n) and b[bo .. bo+n). */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i <= n - L; i += L) {
            acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
        }
        float s = VecMath.sum(acc);
        for (; i < n; i++) {
            s += a[ao + i] * b[bo + i];
        }
        return s;
    }

    /** y[yo ..] += alpha * x[xo ..] for n elements. */
    static void axpy(float alpha, float[] x, int xo, float[] y, int yo, int n) {
        FloatVector a = FloatVector.broadcast(F, alpha);
        int i = 0;
        for (; i <= n - L; i += L) {
            a.fma(FloatVector.fromArray(F, x, xo + i), FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) {
            y[yo + i] += alpha * x[xo + i];
        }
    }

    /** x[off ..] *= s for n elements. */
    static void scale(float[] x, int off, int n, float s) {
        FloatVector sv = FloatVector.broadcast(F, s);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector.fromArray(F, x, off + i).mul(sv).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] *= s;
        }
    }
}
