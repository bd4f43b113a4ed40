package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.model.EngineCounters;
import dev.kimiserve.core.model.Routing;
import dev.kimiserve.core.weights.MlpWeights;
import dev.kimiserve.core.weights.MoeWeights;
import java.util.Arrays;

/**
 * Dense SwiGLU and MoE feed-forward blocks (spec section 6). The MoE routes every row, groups the rows by expert and
 * runs all selected experts (and the shared expert) as one region of fused gate/up jobs and one of down jobs, so each
 * selected expert's weights are read once per step whatever the batch.
 */
final class FeedForward {
    /** Scratch shared by the FFN blocks of one engine. */
    static final class Scratch {
        float[] logits, hidden, gathered, expertOut;
        double[] rowLogits = new double[0];
        double[] weights = new double[0];
        double[] routeWeights = new double[0];
        int[] chosen = new int[0];
        int[] route = new int[0];
        int[] perExpert = new int[0];
        int[] expertStart = new int[0];
        int[] slotRow = new int[0];
        float[] slotWeight = new float[0];
        MatmulJob[] jobs = new MatmulJob[0];

        void ensure(int rows, int dim, int width, MoeConfig moe) {
            int slots = rows * (moe == null ? 1 : moe.expertsPerToken() + 1);
            int w = Math.max(width, moe == null ? 0 : Math.max(moe.intermediateSize(), moe.sharedIntermediateSize()));
            hidden = Buffers.atLeast(hidden, slots * w);
            if (moe != null) {
                int e = moe.numExperts();
                int k = moe.expertsPerToken();
                logits = Buffers.atLeast(logits, rows * e);
                gathered = Buffers.atLeast(gathered, rows * k * dim);
                expertOut = Buffers.atLeast(expertOut, rows * k * dim);
                if (rowLogits.length < e) {
                    rowLogits = new double[e];
                }
                if (routeWeights.length < k) {
                    routeWeights = new double[k];
                    route = new int[k];
                }
                if (weights.length < rows * k) {
                    weights = new double[rows * k];
                    chosen = new int[rows * k];
                    slotRow = new int[rows * k];
                    slotWeight = new float[rows * k];
                }
                perExpert = Buffers.atLeast(perExpert, e);
                expertStart = Buffers.atLeast(expertStart, e + 1);
                if (jobs.length < 2 * (e + 1)) {
                    jobs = new MatmulJob[2 * (e + 1)];
                    for (int i = 0; i < jobs.length; i++) {
                        jobs[i] = new MatmulJob();
                    }
                }
            } else if (jobs.length < 2) {
                jobs = new MatmulJob[]{new MatmulJob(), new MatmulJob()};
            }
        }
    }

    /** A SwiGLU MLP's weights as kernel matrices. */
    record Mlp(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
        static Mlp of(MlpWeights m) {
            return m == null ? null : new Mlp(WeightMatrix.of(m.gate()), WeightMatrix.of(m.up()), WeightMatrix.of(m.down()));
        }

        int width() {
            return gate.rows;
        }
    }

    private FeedForward() {
    }

    /** out[rows, D] = down(silu(gate x) * up x), x paired. */
    static void dense(Matmuls mm, Scratch s, Mlp m, float[] x, int rows, float[] out) {
        int width = m.width();
        mm.run(s.jobs[0].swiglu(m.gate, m.up, x, 0, m.gate.cols, rows, s.hidden, 0, width).paired());
        mm.run(s.jobs[0].set(m.down, s.hidden, rows, out));
    }

    /** MoE over rows of x (paired) into out [rows, D] natural. */
    static void moe(Matmuls mm, Scratch s, MoeConfig cfg, WeightMatrix router, float[] bias, Mlp[] experts, Mlp shared,
                    float[] x, int rows, int dim, float[] out, EngineCounters counters) {
        int e = cfg.numExperts();
        int k = cfg.expertsPerToken();
        mm.run(s.jobs[0].set(router, x, rows, s.logits));              // router logits in fp32
        Arrays.fill(s.perExpert, 0, e, 0);
        for (int r = 0; r < rows; r++) {                               // sigmoid, bias for selection, group-limited top-k
            for (int i = 0; i < e; i++) {
                s.rowLogits[i] = s.logits[r * e + i];
            }
            Routing.route(cfg, s.rowLogits, bias, s.route, s.routeWeights);
            for (int slot = 0; slot < k; slot++) {
                s.chosen[r * k + slot] = s.route[slot];
                s.weights[r * k + slot] = s.routeWeights[slot];
                s.perExpert[s.route[slot]]++;
            }
        }
        // group slots by expert (counting sort): expert ex owns slots [expertStart[ex], expertStart[ex+1])
        int distinct = 0;
        s.expertStart[0] = 0;
        for (int ex = 0; ex < e; ex++) {
            s.expertStart[ex + 1] = s.expertStart[ex] + s.perExpert[ex];
            distinct += s.perExpert[ex] > 0 ? 1 : 0;
        }
        counters.distinctExpertLoads.add(distinct);
        System.arraycopy(s.expertStart, 0, s.perExpert, 0, e);        // reuse as fill cursors
        for (int r = 0; r < rows; r++) {
            for (int slot = 0; slot < k; slot++) {
                int ex = s.chosen[r * k + slot];
                int at = s.perExpert[ex]++;
                s.slotRow[at] = r;
                s.slotWeight[at] = (float) s.weights[r * k + slot];
                System.arraycopy(x, r * dim, s.gathered, at * dim, dim);
            }
        }
        int width = cfg.intermediateSize();
        int sharedWidth = shared == null ? 0 : shared.width();
        int sharedBase = rows * k * width;                             // shared expert's hidden rows after the routed ones
        int n = 0;
        for (int ex = 0; ex < e; ex++) {                               // fused gate/up for every selected expert
            int count = s.expertStart[ex + 1] - s.expertStart[ex];
            if (count > 0) {
                Mlp m = experts[ex];
                s.jobs[n++].swiglu(m.gate, m.up, s.gathered, s.expertStart[ex] * dim, dim, count, s.hidden, s.expertStart[ex] * width, width).paired();
            }
        }
        if (shared != null) {
            s.jobs[n++].swiglu(shared.gate, shared.up, x, 0, dim, rows, s.hidden, sharedBase, sharedWidth).paired();
        }
        mm.run(s.jobs, n);
        n = 0;
        for (int ex = 0; ex < e; ex++) {                               // down projections
            int count = s.expertStart[ex + 1] - s.expertStart[ex];
            if (count > 0) {
                s.jobs[n++].set(experts[ex].down, s.hidden, s.expertStart[ex] * width, width, count, s.expertOut, s.expertStart[ex] * dim, dim);
            }
        }
        if (shared != null) {
            s.jobs[n++].set(shared.down, s.hidden, sharedBase, sharedWidth, rows, out, 0, dim);
        } else {
            Arrays.fill(out, 0, rows * dim, 0f);
        }
        mm.run(s.jobs, n);
        for (int slot = 0; slot < rows * k; slot++) {                  // out += routing weight * expert output
            Vec.axpy(s.slotWeight[slot], s.expertOut, slot * dim, out, s.slotRow[slot] * dim, dim);
        }
    }
}
