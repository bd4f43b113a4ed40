package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The KDA delta rule over one sequence's rows, fp32, vectorised, both forms (spec sections 3.1 and 4):
 * {@link #recurrent} token by token (decode) and {@link #chunked} in chunks of {@link #CHUNK} (prefill). Both read and
 * update the same state S [heads][keyDim][valueDim] and agree to fp32 rounding.
 *
 * <p>Layouts, for rows r in [row0, row0 + rows): q, k, g [r][heads][keyDim]; v [r][heads][valueDim]; beta [r][heads];
 * out [r][heads][valueDim]. q is L2-normalised and scaled by 1/sqrt(keyDim), k L2-normalised, g = log decay (<= 0).
 *
 * <p>Chunked form, per head and chunk (G = in-chunk cumulative log decay): the intra-chunk matrices
 * Aqk[r][j] = sum_d q_r exp(G_r - G_j) k_j and Akk[r][j] = beta_r sum_d k_r exp(G_r - G_j) k_j are built from
 * 16-row sub-chunks: off-diagonal blocks factor through an anchor a (the sub-chunk's first row) as
 * (q_r exp(G_r - G_a)) . (k_j exp(G_a - G_j)) with both exponents <= 0, so nothing overflows however strong the decay
 * (spec 4.6, option 2); the 16x16 diagonal blocks use exact pairwise exponentials. Then the UT transform by forward
 * substitution, the output and the state hand-off (spec 4.3-4.4).
 */
public final class KdaCore {
    public static final int CHUNK = 64;
    static final int SUB = 16;

    private KdaCore() {
    }

    /** Per-thread buffers for one head of one chunk. */
    static final class Scratch {
        final int kd;
        final int vd;
        final float[] q;      // [C][kd]
        final float[] k;      // [C][kd]
        final float[] cum;    // [C][kd] G
        final float[] expCum; // [C][kd] exp(G)
        final float[] v;      // [C][vd]
        final float[] n;      // [C][vd] pseudo values
        final float[] beta = new float[CHUNK];
        final float[] aqk = new float[CHUNK * CHUNK];
        final float[] akk = new float[CHUNK * CHUNK];
        final float[] qa;     // [SUB][kd] anchored queries
        final float[] ka;     // [SUB][kd] anchored keys (rows of the query block)
        final float[] kb;     // [C][kd] keys decayed to the anchor / to the chunk end
        final float[] row;    // [max(kd, vd)]

        Scratch(int kd, int vd) {
            this.kd = kd;
            this.vd = vd;
            q = new float[CHUNK * kd];
            k = new float[CHUNK * kd];
            cum = new float[CHUNK * kd];
            expCum = new float[CHUNK * kd];
            v = new float[CHUNK * vd];
            n = new float[CHUNK * vd];
            qa = new float[SUB * kd];
            ka = new float[SUB * kd];
            kb = new float[CHUNK * kd];
            row = new float[Math.max(kd, vd)];
        }

        boolean fits(int kd, int vd) {
            return this.kd == kd && this.vd == vd;
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = new ThreadLocal<>();

    static Scratch scratch(int kd, int vd) {
        Scratch s = SCRATCH.get();
        if (s == null || !s.fits(kd, vd)) {
            s = new Scratch(kd, vd);
            SCRATCH.set(s);
        }
        return s;
    }

    /** Recurrent form for all heads (tests and small callers). */
    public static void recurrent(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                                 int heads, int kd, int vd, float[] s, float[] out) {
        for (int h = 0; h < heads; h++) {
            recurrentHead(q, k, v, g, beta, row0, rows, heads, kd, vd, h, s, h * kd * vd, out);
        }
    }

    /** Chunked form for all heads (tests and small callers). */
    public static void chunked(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                               int heads, int kd, int vd, float[] s, float[] out) {
        for (int h = 0; h < heads; h++) {
            chunkedHead(q, k, v, g, beta, row0, rows, heads, kd, vd, h, s, h * kd * vd, out);
        }
    }

    /** One head, token by token: S = Diag(exp g) S; e = beta (v - S^T k); S += k e^T; o = S^T q. */
    static void recurrentHead(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                              int heads, int kd, int vd, int h, float[] s, int sb, float[] out) {
        Scratch sc = scratch(kd, vd);
        float[] e = sc.row;
        float[] decay = sc.kb;
        for (int t = row0; t < row0 + rows; t++) {
            int kb = (t * heads + h) * kd;
            int vb = (t * heads + h) * vd;
            expInto(g, kb, kd, decay, 0);
            java.util.Arrays.fill(e, 0, vd, 0f);
            for (int i = 0; i < kd; i++) {
                decayAndAccumulate(s, sb + i * vd, decay[i], k[kb + i], e, vd);
            }
            float b = beta[t * heads + h];
            for (int j = 0; j < vd; j++) {
                e[j] = b * (v[vb + j] - e[j]);
            }
            java.util.Arrays.fill(out, vb, vb + vd, 0f);
            for (int i = 0; i < kd; i++) {
                updateAndRead(s, sb + i * vd, k[kb + i], e, q[kb + i], out, vb, vd);
            }
        }
    }

    /** S_row *= a; acc += S_row * k. */
    private static void decayAndAccumulate(float[] s, int off, float a, float ki, float[] acc, int n) {
        FloatVector av = FloatVector.broadcast(F, a);
        FloatVector kv = FloatVector.broadcast(F, ki);
        int j = 0;
        for (; j <= n - L; j += L) {
            FloatVector row = FloatVector.fromArray(F, s, off + j).mul(av);
            row.intoArray(s, off + j);
            row.fma(kv, FloatVector.fromArray(F, acc, j)).intoArray(acc, j);
        }
        for (; j < n; j++) {
            s[off + j] *= a;
            acc[j] += s[off + j] * ki;
        }
    }

    /** S_row += k e; out += S_row * q. */
    private static void updateAndRead(float[] s, int off, float ki, float[] e, float qi, float[] out, int ob, int n) {
        FloatVector kv = FloatVector.broadcast(F, ki);
        FloatVector qv = FloatVector.broadcast(F, qi);
        int j = 0;
        for (; j <= n - L; j += L) {
            FloatVector row = kv.fma(FloatVector.fromArray(F, e, j), FloatVector.fromArray(F, s, off + j));
            row.intoArray(s, off + j);
            row.fma(qv, FloatVector.fromArray(F, out, ob + j)).intoArray(out, ob + j);
        }
        for (; j < n; j++) {
            s[off + j] += ki * e[j];
            out[ob + j] += s[off + j] * qi;
        }
    }

    /** One head over [row0, row0 + rows) in chunks of 64. */
    static void chunkedHead(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                            int heads, int kd, int vd, int h, float[] s, int sb, float[] out) {
        Scratch sc = scratch(kd, vd);
        for (int c0 = 0; c0 < rows; c0 += CHUNK) {
            int len = Math.min(CHUNK, rows - c0);
            gather(sc, q, k, v, g, beta, row0 + c0, len, heads, kd, vd, h);
            intraChunk(sc, len);
            solveAndOutput(sc, len, s, sb, out, row0 + c0, heads, h);
            updateState(sc, len, s, sb);
        }
    }

    /** Copies one head's chunk rows into contiguous buffers; cumulative gates and their exponentials. */
    private static void gather(Scratch sc, float[] q, float[] k, float[] v, float[] g, float[] beta, int first, int len,
                               int heads, int kd, int vd, int h) {
        for (int r = 0; r < len; r++) {
            int kb = ((first + r) * heads + h) * kd;
            System.arraycopy(q, kb, sc.q, r * kd, kd);
            System.arraycopy(k, kb, sc.k, r * kd, kd);
            System.arraycopy(v, ((first + r) * heads + h) * vd, sc.v, r * vd, vd);
            sc.beta[r] = beta[(first + r) * heads + h];
            if (r == 0) {
                System.arraycopy(g, kb, sc.cum, 0, kd);
            } else {
                add(sc.cum, (r - 1) * kd, g, kb, sc.cum, r * kd, kd);
            }
        }
        expInto(sc.cum, 0, len * kd, sc.expCum, 0);
    }

    /** Aqk (j <= r) and Akk (j < r, times beta_r) from anchored off-diagonal blocks and exact diagonal blocks. */
    private static void intraChunk(Scratch sc, int len) {
        int kd = sc.kd;
        for (int r = 0; r < len; r++) {
            java.util.Arrays.fill(sc.aqk, r * CHUNK + r + 1, r * CHUNK + len, 0f);
        }
        for (int i0 = 0; i0 < len; i0 += SUB) {
            int i1 = Math.min(len, i0 + SUB);
            // diagonal block: exact exp(G_r - G_j), j <= r
            for (int r = i0; r < i1; r++) {
                for (int j = i0; j <= r; j++) {
                    pairExact(sc, r, j);
                }
            }
            if (i0 == 0) {
                continue;
            }
            // off-diagonal blocks j < i0, anchored at row a = i0
            int a = i0 * kd;
            for (int r = i0; r < i1; r++) {
                decayedRow(sc.q, r * kd, sc.cum, r * kd, a, -1, sc.qa, (r - i0) * kd, kd);
                decayedRow(sc.k, r * kd, sc.cum, r * kd, a, -1, sc.ka, (r - i0) * kd, kd);
            }
            for (int j = 0; j < i0; j++) {
                decayedRow(sc.k, j * kd, sc.cum, a, j * kd, -1, sc.kb, j * kd, kd);
            }
            for (int r = i0; r < i1; r++) {
                float b = sc.beta[r];
                for (int j = 0; j < i0; j++) {
                    sc.aqk[r * CHUNK + j] = Vec.dot(sc.qa, (r - i0) * kd, sc.kb, j * kd, kd);
                    sc.akk[r * CHUNK + j] = b * Vec.dot(sc.ka, (r - i0) * kd, sc.kb, j * kd, kd);
                }
            }
        }
    }

    /** dst = src * exp(cum[xa..] - cum[xb..]) over n elements (the caller guarantees the exponent is <= 0). */
    private static void decayedRow(float[] src, int so, float[] cum, int xa, int xb, int unused, float[] dst, int d0, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector e = FloatVector.fromArray(F, cum, xa + i).sub(FloatVector.fromArray(F, cum, xb + i));
            e = VecMath.exp(e);
            FloatVector.fromArray(F, src, so + i).mul(e).intoArray(dst, d0 + i);
        }
        for (; i < n; i++) {
            dst[d0 + i] = src[so + i] * (float) Math.exp(cum[xa + i] - cum[xb + i]);
        }
    }

    private static void pairExact(Scratch sc, int r, int j) {
        int kd = sc.kd;
        int rb = r * kd;
        int jb = j * kd;
        FloatVector accQ = FloatVector.zero(F);
        FloatVector accK = FloatVector.zero(F);
        int d = 0;
        for (; d <= kd - L; d += L) {
            FloatVector e = FloatVector.fromArray(F, sc.cum, rb + d).sub(FloatVector.fromArray(F, sc.cum, jb + d));
            e = VecMath.exp(e);
            FloatVector decayedK = e.mul(FloatVector.fromArray(F, sc.k, jb + d));
            accQ = decayedK.fma(FloatVector.fromArray(F, sc.q, rb + d), accQ);
            accK = decayedK.fma(FloatVector.fromArray(F, sc.k, rb + d), accK);
        }
        float q = VecMath.sum(accQ);
        float kk = VecMath.sum(accK);
        for (; d < kd; d++) {
            float dk = (float) Math.exp(sc.cum[rb + d] - sc.cum[jb + d]) * sc.k[jb + d];
            q += sc.q[rb + d] * dk;
            kk += sc.k[rb + d] * dk;
        }
        sc.aqk[r * CHUNK + j] = q;
        sc.akk[r * CHUNK + j] = j < r ? sc.beta[r] * kk : 0f;
    }

    /**
     * (I + Akk) N = beta V - beta (exp(G) . K) S0 by blocked forward substitution, then O = (exp(G) . Q) S0 + Aqk N,
     * written to the output rows. The products run as register-blocked small GEMMs.
     */
    private static void solveAndOutput(Scratch sc, int len, float[] s, int sb, float[] out, int first, int heads, int h) {
        int kd = sc.kd;
        int vd = sc.vd;
        // w = (exp(G) . K) S0 into n, then n_r = beta_r (v_r - w_r)
        for (int r = 0; r < len; r++) {
            mulInto(sc.k, r * kd, sc.expCum, r * kd, sc.kb, r * kd, kd);
        }
        java.util.Arrays.fill(sc.n, 0, len * vd, 0f);
        SmallGemm.multiplyAdd(len, vd, kd, sc.kb, 0, kd, 1, s, sb, vd, sc.n, 0, vd);
        for (int r = 0; r < len; r++) {
            float b = sc.beta[r];
            int nb = r * vd;
            for (int j = 0; j < vd; j++) {
                sc.n[nb + j] = b * (sc.v[nb + j] - sc.n[nb + j]);
            }
        }
        // forward substitution in blocks of SUB rows: earlier blocks as one product, the block itself row by row
        for (int i0 = 0; i0 < len; i0 += SUB) {
            int i1 = Math.min(len, i0 + SUB);
            if (i0 > 0) {
                negate(sc.akk, i0, i1, i0);
                SmallGemm.multiplyAdd(i1 - i0, vd, i0, sc.akk, i0 * CHUNK, CHUNK, 1, sc.n, 0, vd, sc.n, i0 * vd, vd);
                negate(sc.akk, i0, i1, i0);
            }
            for (int r = i0; r < i1; r++) {
                for (int i = i0; i < r; i++) {
                    Vec.axpy(-sc.akk[r * CHUNK + i], sc.n, i * vd, sc.n, r * vd, vd);
                }
            }
        }
        // O = (exp(G) . Q) S0 + Aqk N  (Aqk is zero above the diagonal)
        for (int r = 0; r < len; r++) {
            mulInto(sc.q, r * kd, sc.expCum, r * kd, sc.kb, r * kd, kd);
        }
        int ob = (first * heads + h) * vd;
        int oRow = heads * vd;
        for (int r = 0; r < len; r++) {
            java.util.Arrays.fill(out, ob + r * oRow, ob + r * oRow + vd, 0f);
        }
        SmallGemm.multiplyAdd(len, vd, kd, sc.kb, 0, kd, 1, s, sb, vd, out, ob, oRow);
        SmallGemm.multiplyAdd(len, vd, len, sc.aqk, 0, CHUNK, 1, sc.n, 0, vd, out, ob, oRow);
    }

    /** a[r][c] = -a[r][c] for rows [r0, r1), columns [0, cols) of a CHUNK-wide matrix. */
    private static void negate(float[] a, int r0, int r1, int cols) {
        for (int r = r0; r < r1; r++) {
            for (int c = 0; c < cols; c++) {
                a[r * CHUNK + c] = -a[r * CHUNK + c];
            }
        }
    }

    private static void mulInto(float[] x, int xo, float[] y, int yo, float[] dst, int d0, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector.fromArray(F, x, xo + i).mul(FloatVector.fromArray(F, y, yo + i)).intoArray(dst, d0 + i);
        }
        for (; i < n; i++) {
            dst[d0 + i] = x[xo + i] * y[yo + i];
        }
    }

    /** S = Diag(exp G_last) S0 + sum_r (exp(G_last - G_r) . k_r) n_r^T, the sum as one product K_d^T N. */
    private static void updateState(Scratch sc, int len, float[] s, int sb) {
        int kd = sc.kd;
        int vd = sc.vd;
        int last = (len - 1) * kd;
        for (int r = 0; r < len; r++) {
            decayedRow(sc.k, r * kd, sc.cum, last, r * kd, -1, sc.kb, r * kd, kd);
        }
        for (int d = 0; d < kd; d++) {
            Vec.scale(s, sb + d * vd, vd, sc.expCum[last + d]);
        }
        SmallGemm.multiplyAdd(kd, vd, len, sc.kb, 0, 1, kd, sc.n, 0, vd, s, sb, vd);
    }

    private static void expInto(float[] src, int so, int n, float[] dst, int d0) {
        int i = 0;
        for (; i <= n - L; i += L) {
            VecMath.exp(FloatVector.fromArray(F, src, so + i)).intoArray(dst, d0 + i);
        }
        for (; i < n; i++) {
            dst[d0 + i] = (float) Math.exp(src[so + i]);
        }
    }

    private static void add(float[] a, int ao, float[] b, int bo, float[] dst, int d0, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector.fromArray(F, a, ao + i).add(FloatVector.fromArray(F, b, bo + i)).intoArray(dst, d0 + i);
        }
        for (; i < n; i++) {
            dst[d0 + i] = a[ao + i] + b[bo + i];
        }
    }
}
