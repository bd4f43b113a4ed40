package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.I;
import static dev.kimiserve.core.cpu.Vec.L;
import static dev.kimiserve.core.cpu.Vec.LE;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Dot products of weight rows with activation rows, fp32 accumulation. Activations are in paired order
 * ({@link Vec}); bf16 weights are decoded in registers (shift / mask), fp32 weights read from their paired copy.
 * Micro-kernels compute 4 weight rows against 1 or 4 activation rows so that each weight load feeds several FMAs
 * (decode is bandwidth-bound, prefill compute-bound).
 */
final class MatmulKernels {
    private MatmulKernels() {
    }

    /** out[0..4) = dot of weight rows r0..r3 (of possibly different matrices) with x[xo .. xo+cols). */
    static void dot4x1(WeightMatrix w0, int r0, WeightMatrix w1, int r1, WeightMatrix w2, int r2, WeightMatrix w3, int r3,
                       float[] x, int xo, float[] out) {
        int cols = w0.cols;
        int full = Vec.blocked(cols);
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        if (w0.bf16 != null && w1.bf16 != null && w2.bf16 != null && w3.bf16 != null) {
            MemorySegment s0 = w0.bf16, s1 = w1.bf16, s2 = w2.bf16, s3 = w3.bf16;
            long b0 = 2L * r0 * cols, b1 = 2L * r1 * cols, b2 = 2L * r2 * cols, b3 = 2L * r3 * cols;
            for (int k = 0; k < full; k += Vec.BLOCK) {
                FloatVector xe = FloatVector.fromArray(F, x, xo + k);
                FloatVector xd = FloatVector.fromArray(F, x, xo + k + L);
                IntVector v0 = IntVector.fromMemorySegment(I, s0, b0 + 2L * k, LE);
                IntVector v1 = IntVector.fromMemorySegment(I, s1, b1 + 2L * k, LE);
                IntVector v2 = IntVector.fromMemorySegment(I, s2, b2 + 2L * k, LE);
                IntVector v3 = IntVector.fromMemorySegment(I, s3, b3 + 2L * k, LE);
                a0 = Vec.odd(v0).fma(xd, Vec.even(v0).fma(xe, a0));
                a1 = Vec.odd(v1).fma(xd, Vec.even(v1).fma(xe, a1));
                a2 = Vec.odd(v2).fma(xd, Vec.even(v2).fma(xe, a2));
                a3 = Vec.odd(v3).fma(xd, Vec.even(v3).fma(xe, a3));
            }
        } else {
            for (int k = 0; k < full; k += Vec.BLOCK) {
                FloatVector xe = FloatVector.fromArray(F, x, xo + k);
                FloatVector xd = FloatVector.fromArray(F, x, xo + k + L);
                a0 = fmaRow(w0, r0, k, xe, xd, a0);
                a1 = fmaRow(w1, r1, k, xe, xd, a1);
                a2 = fmaRow(w2, r2, k, xe, xd, a2);
                a3 = fmaRow(w3, r3, k, xe, xd, a3);
            }
        }
        float[] acc = ACCUMULATORS.get();
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
        sumLanes(acc, 4, out);
        out[0] += tail(w0, r0, x, xo, full);
        out[1] += tail(w1, r1, x, xo, full);
        out[2] += tail(w2, r2, x, xo, full);
        out[3] += tail(w3, r3, x, xo, full);
    }

    /**
     * out[4*i + j] = dot of weight row r_i with activation row j (x rows at xo + j*xStride), for 4 weight rows and
     * 4 activation rows.
     */
    static void dot4x4(WeightMatrix w0, int r0, WeightMatrix w1, int r1, WeightMatrix w2, int r2, WeightMatrix w3, int r3,
                       float[] x, int xo, int xStride, float[] out) {
        int cols = w0.cols;
        int full = Vec.blocked(cols);
        if (w0.bf16 == null || w1.bf16 == null || w2.bf16 == null || w3.bf16 == null) {
            float[] tmp = SCRATCH4.get();
            for (int j = 0; j < 4; j++) {
                dot4x1(w0, r0, w1, r1, w2, r2, w3, r3, x, xo + j * xStride, tmp);
                for (int i = 0; i < 4; i++) {
                    out[4 * i + j] = tmp[i];
                }
            }
            return;
        }
        MemorySegment s0 = w0.bf16, s1 = w1.bf16, s2 = w2.bf16, s3 = w3.bf16;
        long b0 = 2L * r0 * cols, b1 = 2L * r1 * cols, b2 = 2L * r2 * cols, b3 = 2L * r3 * cols;
        int x0 = xo, x1 = xo + xStride, x2 = xo + 2 * xStride, x3 = xo + 3 * xStride;
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int k = 0; k < full; k += Vec.BLOCK) {
            IntVector v0 = IntVector.fromMemorySegment(I, s0, b0 + 2L * k, LE);
            IntVector v1 = IntVector.fromMemorySegment(I, s1, b1 + 2L * k, LE);
            IntVector v2 = IntVector.fromMemorySegment(I, s2, b2 + 2L * k, LE);
            IntVector v3 = IntVector.fromMemorySegment(I, s3, b3 + 2L * k, LE);
            FloatVector e0 = Vec.even(v0), o0 = Vec.odd(v0);
            FloatVector e1 = Vec.even(v1), o1 = Vec.odd(v1);
            FloatVector e2 = Vec.even(v2), o2 = Vec.odd(v2);
            FloatVector e3 = Vec.even(v3), o3 = Vec.odd(v3);
            FloatVector xe = FloatVector.fromArray(F, x, x0 + k), xd = FloatVector.fromArray(F, x, x0 + k + L);
            c00 = o0.fma(xd, e0.fma(xe, c00));
            c10 = o1.fma(xd, e1.fma(xe, c10));
            c20 = o2.fma(xd, e2.fma(xe, c20));
            c30 = o3.fma(xd, e3.fma(xe, c30));
            xe = FloatVector.fromArray(F, x, x1 + k);
            xd = FloatVector.fromArray(F, x, x1 + k + L);
            c01 = o0.fma(xd, e0.fma(xe, c01));
            c11 = o1.fma(xd, e1.fma(xe, c11));
            c21 = o2.fma(xd, e2.fma(xe, c21));
            c31 = o3.fma(xd, e3.fma(xe, c31));
            xe = FloatVector.fromArray(F, x, x2 + k);
            xd = FloatVector.fromArray(F, x, x2 + k + L);
            c02 = o0.fma(xd, e0.fma(xe, c02));
            c12 = o1.fma(xd, e1.fma(xe, c12));
            c22 = o2.fma(xd, e2.fma(xe, c22));
            c32 = o3.fma(xd, e3.fma(xe, c32));
            xe = FloatVector.fromArray(F, x, x3 + k);
            xd = FloatVector.fromArray(F, x, x3 + k + L);
            c03 = o0.fma(xd, e0.fma(xe, c03));
            c13 = o1.fma(xd, e1.fma(xe, c13));
            c23 = o2.fma(xd, e2.fma(xe, c23));
            c33 = o3.fma(xd, e3.fma(xe, c33));
        }
        float[] acc = ACCUMULATORS.get();
        c00.intoArray(acc, 0);
        c01.intoArray(acc, L);
        c02.intoArray(acc, 2 * L);
        c03.intoArray(acc, 3 * L);
        c10.intoArray(acc, 4 * L);
        c11.intoArray(acc, 5 * L);
        c12.intoArray(acc, 6 * L);
        c13.intoArray(acc, 7 * L);
        c20.intoArray(acc, 8 * L);
        c21.intoArray(acc, 9 * L);
        c22.intoArray(acc, 10 * L);
        c23.intoArray(acc, 11 * L);
        c30.intoArray(acc, 12 * L);
        c31.intoArray(acc, 13 * L);
        c32.intoArray(acc, 14 * L);
        c33.intoArray(acc, 15 * L);
        sumLanes(acc, 16, out);
        if (full != cols) {
            for (int j = 0; j < 4; j++) {
                int xj = xo + j * xStride;
                out[j] += tailSum(w0, r0, x, xj, full);
                out[4 + j] += tailSum(w1, r1, x, xj, full);
                out[8 + j] += tailSum(w2, r2, x, xj, full);
                out[12 + j] += tailSum(w3, r3, x, xj, full);
            }
        }
    }

    /** Per-thread room for a micro-kernel's accumulator vectors, one after another. */
    private static final ThreadLocal<float[]> ACCUMULATORS = ThreadLocal.withInitial(() -> new float[16 * L]);

    /**
     * out[j] = the lane sum of the j-th vector stored in acc, for j < count. The kernels store their accumulators and
     * reduce them here, in one small loop, rather than inlining sixteen reductions into their own bodies, which C2
     * then declines to compile well.
     */
    private static void sumLanes(float[] acc, int count, float[] out) {
        for (int j = 0; j < count; j++) {
            out[j] = VecMath.sum(FloatVector.fromArray(F, acc, j * L));
        }
    }

    private static final ThreadLocal<float[]> RESULTS = ThreadLocal.withInitial(() -> new float[16]);

    /** A per-thread array for micro-kernel results. */
    static float[] results() {
        return RESULTS.get();
    }

    private static final ThreadLocal<float[]> SCRATCH4 = ThreadLocal.withInitial(() -> new float[4]);

    /** One dot product of weight row r with x[xo ..]. */
    static float dot1(WeightMatrix w, int r, float[] x, int xo) {
        int cols = w.cols;
        int full = Vec.blocked(cols);
        FloatVector a = FloatVector.zero(F);
        if (w.bf16 != null) {
            long b = 2L * r * cols;
            for (int k = 0; k < full; k += Vec.BLOCK) {
                IntVector v = IntVector.fromMemorySegment(I, w.bf16, b + 2L * k, LE);
                a = Vec.odd(v).fma(FloatVector.fromArray(F, x, xo + k + L), Vec.even(v).fma(FloatVector.fromArray(F, x, xo + k), a));
            }
        } else {
            for (int k = 0; k < full; k += Vec.BLOCK) {
                a = fmaRow(w, r, k, FloatVector.fromArray(F, x, xo + k), FloatVector.fromArray(F, x, xo + k + L), a);
            }
        }
        return VecMath.sum(a) + tail(w, r, x, xo, full);
    }

    /** acc (paired order, length cols) += alpha * W[r]: the building block of W^T x. */
    static void accumulateRow(WeightMatrix w, int r, float alpha, float[] acc, int ao) {
        int cols = w.cols;
        int full = Vec.blocked(cols);
        FloatVector a = FloatVector.broadcast(F, alpha);
        if (w.bf16 != null) {
            long b = 2L * r * cols;
            for (int k = 0; k < full; k += Vec.BLOCK) {
                IntVector v = IntVector.fromMemorySegment(I, w.bf16, b + 2L * k, LE);
                Vec.even(v).fma(a, FloatVector.fromArray(F, acc, ao + k)).intoArray(acc, ao + k);
                Vec.odd(v).fma(a, FloatVector.fromArray(F, acc, ao + k + L)).intoArray(acc, ao + k + L);
            }
        } else {
            int base = w.f32Off + r * cols;
            for (int k = 0; k < full; k += Vec.BLOCK) {
                FloatVector.fromArray(F, w.f32, base + k).fma(a, FloatVector.fromArray(F, acc, ao + k)).intoArray(acc, ao + k);
                FloatVector.fromArray(F, w.f32, base + k + L).fma(a, FloatVector.fromArray(F, acc, ao + k + L)).intoArray(acc, ao + k + L);
            }
        }
        for (int c = full; c < cols; c++) {
            acc[ao + c] += alpha * w.get(r, c);
        }
    }

    private static FloatVector fmaRow(WeightMatrix w, int r, int k, FloatVector xe, FloatVector xd, FloatVector acc) {
        int base = w.f32Off + r * w.cols + k;
        return FloatVector.fromArray(F, w.f32, base + L).fma(xd, FloatVector.fromArray(F, w.f32, base).fma(xe, acc));
    }

    /** The part of a dot product past the last full block (natural order on both sides). */
    private static float tail(WeightMatrix w, int r, float[] x, int xo, int full) {
        if (full == w.cols) {
            return 0f;
        }
        return tailSum(w, r, x, xo, full);
    }

    private static float tailSum(WeightMatrix w, int r, float[] x, int xo, int full) {
        float s = 0f;
        for (int c = full; c < w.cols; c++) {
            s += w.get(r, c) * x[xo + c];
        }
        return s;
    }
}
