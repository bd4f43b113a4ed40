package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.L;

import jdk.incubator.vector.FloatVector;

/**
 * C[m][n] += A[m][k] * B[k][n] for the small fp32 products inside a KDA chunk (64 x 128 x 128 at most), with A read
 * through arbitrary row/column strides (so A^T costs nothing) and 4 x 2L register tiles of C.
 */
final class SmallGemm {
    private SmallGemm() {
    }

    /**
     * @param a    A[i][kk] = a[aOff + i*aRow + kk*aCol]
     * @param b    B[kk][j] = b[bOff + kk*bRow + j]
     * @param c    C[i][j] = c[cOff + i*cRow + j]
     */
    static void multiplyAdd(int m, int n, int k, float[] a, int aOff, int aRow, int aCol, float[] b, int bOff, int bRow,
                            float[] c, int cOff, int cRow) {
        int i = 0;
        for (; i + 4 <= m; i += 4) {
            int j = 0;
            for (; j + 2 * L <= n; j += 2 * L) {
                tile4x2(k, a, aOff + i * aRow, aRow, aCol, b, bOff + j, bRow, c, cOff + i * cRow + j, cRow);
            }
            for (; j < n; j++) {
                for (int ii = i; ii < i + 4; ii++) {
                    c[cOff + ii * cRow + j] += dotColumn(k, a, aOff + ii * aRow, aCol, b, bOff + j, bRow);
                }
            }
        }
        for (; i < m; i++) {
            for (int kk = 0; kk < k; kk++) {
                Vec.axpy(a[aOff + i * aRow + kk * aCol], b, bOff + kk * bRow, c, cOff + i * cRow, n);
            }
        }
    }

    private static void tile4x2(int k, float[] a, int a0, int aRow, int aCol, float[] b, int b0, int bRow, float[] c, int c0, int cRow) {
        FloatVector c00 = FloatVector.fromArray(F, c, c0), c01 = FloatVector.fromArray(F, c, c0 + L);
        FloatVector c10 = FloatVector.fromArray(F, c, c0 + cRow), c11 = FloatVector.fromArray(F, c, c0 + cRow + L);
        FloatVector c20 = FloatVector.fromArray(F, c, c0 + 2 * cRow), c21 = FloatVector.fromArray(F, c, c0 + 2 * cRow + L);
        FloatVector c30 = FloatVector.fromArray(F, c, c0 + 3 * cRow), c31 = FloatVector.fromArray(F, c, c0 + 3 * cRow + L);
        for (int kk = 0; kk < k; kk++) {
            int bo = b0 + kk * bRow;
            FloatVector b0v = FloatVector.fromArray(F, b, bo);
            FloatVector b1v = FloatVector.fromArray(F, b, bo + L);
            int ao = a0 + kk * aCol;
            FloatVector x0 = FloatVector.broadcast(F, a[ao]);
            FloatVector x1 = FloatVector.broadcast(F, a[ao + aRow]);
            FloatVector x2 = FloatVector.broadcast(F, a[ao + 2 * aRow]);
            FloatVector x3 = FloatVector.broadcast(F, a[ao + 3 * aRow]);
            c00 = x0.fma(b0v, c00);
            c01 = x0.fma(b1v, c01);
            c10 = x1.fma(b0v, c10);
            c11 = x1.fma(b1v, c11);
            c20 = x2.fma(b0v, c20);
            c21 = x2.fma(b1v, c21);
            c30 = x3.fma(b0v, c30);
            c31 = x3.fma(b1v, c31);
        }
        c00.intoArray(c, c0);
        c01.intoArray(c, c0 + L);
        c10.intoArray(c, c0 + cRow);
        c11.intoArray(c, c0 + cRow + L);
        c20.intoArray(c, c0 + 2 * cRow);
        c21.intoArray(c, c0 + 2 * cRow + L);
        c30.intoArray(c, c0 + 3 * cRow);
        c31.intoArray(c, c0 + 3 * cRow + L);
    }

    private static float dotColumn(int k, float[] a, int ao, int aCol, float[] b, int bo, int bRow) {
        float s = 0f;
        for (int kk = 0; kk < k; kk++) {
            s += a[ao + kk * aCol] * b[bo + kk * bRow];
        }
        return s;
    }
}
