package dev.kimiserve.core.cpu;

/**
 * The KDA delta rule over one sequence's rows, fp32, both forms (spec sections 3.1 and 4):
 * {@link #recurrent} token by token (decode) and {@link #chunked} in chunks of {@link #CHUNK} (prefill). Both read
 * and update the same state S [heads][keyDim][valueDim] and must agree to fp32 rounding.
 *
 * <p>Layouts, for rows r in [row0, row0 + rows): q, k, g [r][heads][keyDim]; v [r][heads][valueDim];
 * beta [r][heads]; out [r][heads][valueDim]. q is L2-normalised and scaled by 1/sqrt(keyDim), k L2-normalised,
 * g = log decay (<= 0).
 */
public final class KdaCore {
    public static final int CHUNK = 64;

    private KdaCore() {
    }

    public static void recurrent(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                                 int heads, int kd, int vd, float[] s, float[] out) {
        float[] e = new float[vd];
        for (int t = row0; t < row0 + rows; t++) {
            for (int h = 0; h < heads; h++) {
                int sb = h * kd * vd;
                int kb = (t * heads + h) * kd;
                int vb = (t * heads + h) * vd;
                float b = beta[t * heads + h];
                // S = Diag(exp g) S;  e = beta (v - S^T k)
                java.util.Arrays.fill(e, 0f);
                for (int i = 0; i < kd; i++) {
                    float a = (float) Math.exp(g[kb + i]);
                    float ki = k[kb + i];
                    int row = sb + i * vd;
                    for (int j = 0; j < vd; j++) {
                        float sij = s[row + j] * a;
                        s[row + j] = sij;
                        e[j] += sij * ki;
                    }
                }
                for (int j = 0; j < vd; j++) {
                    e[j] = b * (v[vb + j] - e[j]);
                }
                // S += k e^T;  o = S^T q
                for (int j = 0; j < vd; j++) {
                    out[vb + j] = 0f;
                }
                for (int i = 0; i < kd; i++) {
                    float ki = k[kb + i];
                    float qi = q[kb + i];
                    int row = sb + i * vd;
                    for (int j = 0; j < vd; j++) {
                        float sij = s[row + j] + ki * e[j];
                        s[row + j] = sij;
                        out[vb + j] += sij * qi;
                    }
                }
            }
        }
    }

    /**
     * Chunked form with exact pairwise decays exp(G_r - G_j), j <= r, whose exponents are never positive, so
     * strong gates can only underflow (harmlessly), never overflow (spec section 4.6, option 1).
     */
    public static void chunked(float[] q, float[] k, float[] v, float[] g, float[] beta, int row0, int rows,
                               int heads, int kd, int vd, float[] s, float[] out) {
        float[] cum = new float[CHUNK * kd];      // G [r][d]: inclusive cumulative log decay within the chunk
        float[] expCum = new float[CHUNK * kd];   // exp(G)
        float[] akk = new float[CHUNK * CHUNK];   // beta_r sum_d k_r D_rj k_j, j < r
        float[] aqk = new float[CHUNK * CHUNK];   // sum_d q_r D_rj k_j, j <= r
        float[] n = new float[CHUNK * vd];        // pseudo values beta_r e_r
        for (int h = 0; h < heads; h++) {
            int sb = h * kd * vd;
            for (int c0 = 0; c0 < rows; c0 += CHUNK) {
                int len = Math.min(CHUNK, rows - c0);
                int first = row0 + c0;
                for (int r = 0; r < len; r++) {
                    int gb = ((first + r) * heads + h) * kd;
                    for (int d = 0; d < kd; d++) {
                        float prev = r == 0 ? 0f : cum[(r - 1) * kd + d];
                        cum[r * kd + d] = prev + g[gb + d];
                        expCum[r * kd + d] = (float) Math.exp(cum[r * kd + d]);
                    }
                }
                for (int r = 0; r < len; r++) {
                    int rb = ((first + r) * heads + h) * kd;
                    for (int j = 0; j <= r; j++) {
                        int jb = ((first + j) * heads + h) * kd;
                        float accQ = 0f;
                        float accK = 0f;
                        for (int d = 0; d < kd; d++) {
                            float decayedKj = (float) Math.exp(cum[r * kd + d] - cum[j * kd + d]) * k[jb + d];
                            accQ += q[rb + d] * decayedKj;
                            accK += k[rb + d] * decayedKj;
                        }
                        aqk[r * CHUNK + j] = accQ;
                        akk[r * CHUNK + j] = j < r ? beta[(first + r) * heads + h] * accK : 0f;
                    }
                }
                // (I + Akk) N = beta V - beta (exp(G) . K) S0, by forward substitution
                for (int r = 0; r < len; r++) {
                    int rb = ((first + r) * heads + h) * kd;
                    int vb = ((first + r) * heads + h) * vd;
                    float b = beta[(first + r) * heads + h];
                    for (int j = 0; j < vd; j++) {
                        float acc = 0f;
                        for (int d = 0; d < kd; d++) {
                            acc += expCum[r * kd + d] * k[rb + d] * s[sb + d * vd + j];
                        }
                        float val = b * (v[vb + j] - acc);
                        for (int i = 0; i < r; i++) {
                            val -= akk[r * CHUNK + i] * n[i * vd + j];
                        }
                        n[r * vd + j] = val;
                    }
                }
                // O = (exp(G) . Q) S0 + Aqk N
                for (int r = 0; r < len; r++) {
                    int rb = ((first + r) * heads + h) * kd;
                    int ob = ((first + r) * heads + h) * vd;
                    for (int j = 0; j < vd; j++) {
                        float acc = 0f;
                        for (int d = 0; d < kd; d++) {
                            acc += expCum[r * kd + d] * q[rb + d] * s[sb + d * vd + j];
                        }
                        for (int i = 0; i <= r; i++) {
                            acc += aqk[r * CHUNK + i] * n[i * vd + j];
                        }
                        out[ob + j] = acc;
                    }
                }
                // S = Diag(exp G_last) S0 + sum_r (exp(G_last - G_r) . k_r) n_r^T
                int last = (len - 1) * kd;
                for (int d = 0; d < kd; d++) {
                    float decayAll = expCum[last + d];
                    int row = sb + d * vd;
                    for (int j = 0; j < vd; j++) {
                        s[row + j] *= decayAll;
                    }
                    for (int r = 0; r < len; r++) {
                        float kr = (float) Math.exp(cum[last + d] - cum[r * kd + d]) * k[((first + r) * heads + h) * kd + d];
                        int nb = r * vd;
                        for (int j = 0; j < vd; j++) {
                            s[row + j] += kr * n[nb + j];
                        }
                    }
                }
            }
        }
    }
}
