package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.L;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.state.KdaState;
import dev.kimiserve.core.weights.KdaWeights;
import java.util.List;
import jdk.incubator.vector.FloatVector;

/** The KDA token mixer over a ragged batch (spec section 3.1), vectorised and parallel; buffers shared by all KDA layers. */
final class KdaMixer {
    /** Scratch shared by the KDA layers of one engine. */
    static final class Scratch {
        float[] qPre, kPre, vPre, q, k, v, lowPaired, g, beta, o, outGate, oPaired;
        int lowRows;
        final MatmulJob[] jobs = {new MatmulJob(), new MatmulJob(), new MatmulJob(), new MatmulJob(), new MatmulJob(), new MatmulJob()};

        void ensure(int rows, KdaConfig c) {
            int ch = rows * c.projectionSize();
            qPre = Buffers.atLeast(qPre, ch);
            kPre = Buffers.atLeast(kPre, ch);
            vPre = Buffers.atLeast(vPre, ch);
            q = Buffers.atLeast(q, ch);
            k = Buffers.atLeast(k, ch);
            v = Buffers.atLeast(v, ch);
            lowPaired = Buffers.atLeast(lowPaired, 2 * rows * c.headDim());
            g = Buffers.atLeast(g, ch);
            beta = Buffers.atLeast(beta, rows * c.numHeads());
            o = Buffers.atLeast(o, ch);
            outGate = Buffers.atLeast(outGate, ch);
            oPaired = Buffers.atLeast(oPaired, ch);
        }
    }

    private final KdaConfig cfg;
    private final int layer;
    private final float normEps;
    private final WeightMatrix qProj, kProj, vProj, fA, bProj, gA, oProj;
    /** f_b_proj and g_b_proj split by head: head h's gate channels come from rows [h*K, (h+1)*K). */
    private final WeightMatrix[] fBHead, gBHead;
    /** Conv taps transposed to [tap][channel] so the convolution vectorises over channels. */
    private final float[] qTaps, kTaps, vTaps;
    private final float[] aLog, dtBias, oNorm;

    KdaMixer(KdaConfig cfg, KdaWeights w, int layer, float normEps) {
        this.cfg = cfg;
        this.layer = layer;
        this.normEps = normEps;
        qProj = WeightMatrix.of(w.qProj());
        kProj = WeightMatrix.of(w.kProj());
        vProj = WeightMatrix.of(w.vProj());
        fA = WeightMatrix.of(w.fA());
        WeightMatrix fB = WeightMatrix.of(w.fB());
        bProj = WeightMatrix.of(w.bProj());
        gA = WeightMatrix.of(w.gA());
        WeightMatrix gB = WeightMatrix.of(w.gB());
        fBHead = new WeightMatrix[cfg.numHeads()];
        gBHead = new WeightMatrix[cfg.numHeads()];
        for (int h = 0; h < cfg.numHeads(); h++) {
            fBHead[h] = fB.rows(h * cfg.headDim(), (h + 1) * cfg.headDim());
            gBHead[h] = gB.rows(h * cfg.headDim(), (h + 1) * cfg.headDim());
        }
        oProj = WeightMatrix.of(w.oProj());
        qTaps = transpose(w.qConv(), cfg.projectionSize(), cfg.convKernel());
        kTaps = transpose(w.kConv(), cfg.projectionSize(), cfg.convKernel());
        vTaps = transpose(w.vConv(), cfg.projectionSize(), cfg.convKernel());
        aLog = w.aLog();
        dtBias = w.dtBias();
        oNorm = w.oNorm();
    }

    private static float[] transpose(float[] taps, int channels, int kernel) {
        float[] t = new float[taps.length];
        for (int c = 0; c < channels; c++) {
            for (int j = 0; j < kernel; j++) {
                t[j * channels + c] = taps[c * kernel + j];
            }
        }
        return t;
    }

    /** x [rows, D] paired (normed block input) -> out [rows, D] natural. */
    void forward(CpuPool pool, Matmuls mm, Scratch s, float[] x, int rows, List<Segment> segments, float[] out) {
        int heads = cfg.numHeads();
        int hd = cfg.headDim();
        int c = cfg.projectionSize();
        MatmulJob[] j = s.jobs;
        j[0].set(qProj, x, rows, s.qPre);                              // q_proj(x)
        j[1].set(kProj, x, rows, s.kPre);                              // k_proj(x)
        j[2].set(vProj, x, rows, s.vPre);                              // v_proj(x)
        j[3].set(fA, x, rows, s.lowPaired).paired();                   // f_a_proj(x)
        j[4].set(gA, x, 0, fA.cols, rows, s.lowPaired, rows * hd, hd).paired(); // g_a_proj(x)
        j[5].set(bProj, x, rows, s.beta);                              // b_proj(x)
        mm.run(j, 6);
        s.lowRows = rows;
        boolean pairPerHead = hd % Vec.BLOCK == 0;
        pool.forRange(segments.size() * heads, 1, (from, to) -> {      // everything per (sequence, head)
            for (int item = from; item < to; item++) {
                Segment seg = segments.get(item / heads);
                headForward(s, seg, item % heads, pairPerHead);
            }
        });
        if (!pairPerHead) {
            for (int r = 0; r < rows; r++) {
                Vec.pairOrder(s.o, r * c, c, s.oPaired, r * c);
            }
        }
        mm.run(j[0].set(oProj, s.oPaired, rows, out));                 // o_proj
    }

    /** One head of one sequence: short convs, norms, gates, the delta rule and the gated output norm. */
    private void headForward(Scratch s, Segment seg, int h, boolean pairPerHead) {
        int heads = cfg.numHeads();
        int hd = cfg.headDim();
        int c = cfg.projectionSize();
        int c0 = h * hd;
        KdaState st = seg.state().kda(layer);
        int lowRows = s.lowRows;
        float[] dots = MatmulKernels.results();
        for (int r = seg.start(); r < seg.start() + seg.count(); r++) { // this head's rows of f_b_proj and g_b_proj
            for (int i = 0; i < hd; i += 4) {
                if (i + 4 <= hd) {
                    MatmulKernels.dot4x1(fBHead[h], i, fBHead[h], i + 1, fBHead[h], i + 2, fBHead[h], i + 3, s.lowPaired, r * hd, dots);
                    System.arraycopy(dots, 0, s.g, r * c + c0 + i, 4);
                    MatmulKernels.dot4x1(gBHead[h], i, gBHead[h], i + 1, gBHead[h], i + 2, gBHead[h], i + 3, s.lowPaired, (lowRows + r) * hd, dots);
                    System.arraycopy(dots, 0, s.outGate, r * c + c0 + i, 4);
                } else {
                    for (int ii = i; ii < hd; ii++) {
                        s.g[r * c + c0 + ii] = MatmulKernels.dot1(fBHead[h], ii, s.lowPaired, r * hd);
                        s.outGate[r * c + c0 + ii] = MatmulKernels.dot1(gBHead[h], ii, s.lowPaired, (lowRows + r) * hd);
                    }
                }
            }
        }
        conv(s.qPre, s.q, qTaps, st.convQ, seg, c0, c0 + hd);         // causal_conv1d + silu, continuing the windows
        conv(s.kPre, s.k, kTaps, st.convK, seg, c0, c0 + hd);
        conv(s.vPre, s.v, vTaps, st.convV, seg, c0, c0 + hd);
        shiftWindow(s.qPre, st.convQ, seg, c0, c0 + hd);
        shiftWindow(s.kPre, st.convK, seg, c0, c0 + hd);
        shiftWindow(s.vPre, st.convV, seg, c0, c0 + hd);
        float qScale = (float) (1.0 / Math.sqrt(hd));
        float decayRate = (float) -Math.exp(aLog[h]);
        for (int r = seg.start(); r < seg.start() + seg.count(); r++) {
            int base = r * c + c0;
            Norms.l2Normalize(s.q, base, hd, 1e-6f, qScale);          // l2norm(q) / sqrt(K)
            Norms.l2Normalize(s.k, base, hd, 1e-6f, 1f);              // l2norm(k)
            Norms.kdaGate(s.g, base, hd, dtBias, c0, decayRate);       // g = -exp(A_log) * softplus(a + dt_bias)
            s.beta[r * heads + h] = Functions.sigmoid(s.beta[r * heads + h]); // beta = sigmoid(b_proj(x))
        }
        if (seg.decode()) {                                            // the delta rule
            KdaCore.recurrentHead(s.q, s.k, s.v, s.g, s.beta, seg.start(), seg.count(), heads, hd, hd, h, st.recurrent, h * hd * hd, s.o);
        } else {
            KdaCore.chunkedHead(s.q, s.k, s.v, s.g, s.beta, seg.start(), seg.count(), heads, hd, hd, h, st.recurrent, h * hd * hd, s.o);
        }
        for (int r = seg.start(); r < seg.start() + seg.count(); r++) { // o_norm(o, gate)
            int base = r * c + c0;
            Norms.gatedRmsNorm(s.o, base, hd, oNorm, normEps, s.outGate, base);
            if (pairPerHead) {
                Vec.pairOrder(s.o, base, hd, s.oPaired, base);
            }
        }
    }

    /** Channels [c0, c1) of one segment: out[t] = silu(sum_j taps[j] * in[t - W + j]), history from the window. */
    private void conv(float[] in, float[] out, float[] taps, float[] window, Segment seg, int c0, int c1) {
        int ch = cfg.projectionSize();
        int w = cfg.convKernel() - 1;
        for (int t = 0; t < seg.count(); t++) {
            int row = (seg.start() + t) * ch;
            int c = c0;
            for (; c <= c1 - L; c += L) {
                FloatVector acc = FloatVector.fromArray(F, taps, w * ch + c).mul(FloatVector.fromArray(F, in, row + c));
                for (int jj = 0; jj < w; jj++) {
                    int src = t - w + jj;
                    FloatVector x = src >= 0 ? FloatVector.fromArray(F, in, (seg.start() + src) * ch + c) : windowVector(window, c, w, w + src);
                    acc = FloatVector.fromArray(F, taps, jj * ch + c).fma(x, acc);
                }
                acc.mul(VecMath.sigmoid(acc)).intoArray(out, row + c);
            }
            for (; c < c1; c++) {
                float acc = taps[w * ch + c] * in[row + c];
                for (int jj = 0; jj < w; jj++) {
                    int src = t - w + jj;
                    acc += taps[jj * ch + c] * (src >= 0 ? in[(seg.start() + src) * ch + c] : window[c * w + w + src]);
                }
                out[row + c] = Functions.silu(acc);
            }
        }
    }

    /** Tap {@code tap} of the window for channels c .. c+L ([channel][W] layout, gathered). */
    private static FloatVector windowVector(float[] window, int c, int w, int tap) {
        float[] tmp = WINDOW_TMP.get();
        for (int i = 0; i < L; i++) {
            tmp[i] = window[(c + i) * w + tap];
        }
        return FloatVector.fromArray(F, tmp, 0);
    }

    private static final ThreadLocal<float[]> WINDOW_TMP = ThreadLocal.withInitial(() -> new float[L]);

    /** window = last W of (window ++ segment inputs), for channels [c0, c1). */
    private void shiftWindow(float[] in, float[] window, Segment seg, int c0, int c1) {
        int ch = cfg.projectionSize();
        int w = cfg.convKernel() - 1;
        int count = seg.count();
        for (int c = c0; c < c1; c++) {
            for (int jj = 0; jj < w; jj++) {
                int src = count - w + jj;
                window[c * w + jj] = src < 0 ? window[c * w + w + src] : in[(seg.start() + src) * ch + c];
            }
        }
    }
}
