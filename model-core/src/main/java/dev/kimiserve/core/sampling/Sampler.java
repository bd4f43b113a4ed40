package dev.kimiserve.core.sampling;

import java.util.Arrays;
import java.util.BitSet;
import java.util.SplittableRandom;

/**
 * Picks tokens from logits for one sequence under {@link SamplingParams}. Keeps its own seeded generator, so a
 * seeded request gives the same tokens on every run. Not thread-safe: one per sequence.
 */
public final class Sampler {
    private final SamplingParams params;
    private final SplittableRandom random;
    private final float[] work;
    private long[] order = new long[0];

    public Sampler(SamplingParams params, int vocabSize) {
        this.params = params;
        this.random = new SplittableRandom(params.seed() != null ? params.seed() : new SplittableRandom().nextLong());
        this.work = new float[vocabSize];
    }

    public SamplingParams params() {
        return params;
    }

    /**
     * Advances the random generator past {@code tokens} earlier draws, as if this sampler had sampled them: a sequence
     * resumed on another worker continues the same random stream (every non-greedy sample takes exactly one draw).
     */
    public void advance(int tokens) {
        if (params.greedy()) {
            return;
        }
        for (int i = 0; i < tokens; i++) {
            random.nextDouble();
        }
    }

    /** The next token from logits[offset .. offset + vocab); {@code history} may be null when no penalty is set. */
    public int sample(float[] logits, int offset, TokenHistory history) {
        int vocab = work.length;
        System.arraycopy(logits, offset, work, 0, vocab);
        if (params.hasPenalties() && history != null) {
            applyPenalties(work, history);
        }
        if (params.greedy()) {
            return argmax(work);
        }
        return draw(work);
    }

    /** vLLM order: repetition penalty on prompt+output tokens, then frequency and presence on output tokens. */
    void applyPenalties(float[] l, TokenHistory history) {
        float rp = (float) params.repetitionPenalty();
        if (rp != 1f) {
            BitSet seen = history.seen();
            for (int t = seen.nextSetBit(0); t >= 0; t = seen.nextSetBit(t + 1)) {
                l[t] = l[t] > 0 ? l[t] / rp : l[t] * rp;
            }
        }
        if (params.frequencyPenalty() != 0 || params.presencePenalty() != 0) {
            BitSet gen = history.generated();
            for (int t = gen.nextSetBit(0); t >= 0; t = gen.nextSetBit(t + 1)) {
                l[t] -= (float) (params.frequencyPenalty() * history.outputCount(t) + params.presencePenalty());
            }
        }
    }

    /** Index of the largest logit; ties go to the lowest index; NaN logits are never chosen. */
    public static int argmax(float[] l) {
        int best = -1;
        for (int i = 0; i < l.length; i++) {
            if (!Float.isNaN(l[i]) && (best < 0 || l[i] > l[best])) {
                best = i;
            }
        }
        if (best < 0) {
            throw new IllegalStateException("all logits are NaN");
        }
        return best;
    }

    private int draw(float[] l) {
        int vocab = l.length;
        double invT = 1.0 / params.temperature();
        int keep = params.topK() > 0 ? Math.min(params.topK(), vocab) : vocab;
        // candidates sorted by logit, best first: (sortable logit bits << 32 | index), descending
        int n = sortCandidates(l);
        keep = Math.min(keep, n);
        double max = l[(int) order[0]];
        double[] p = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            p[i] = Math.exp((l[(int) order[i]] - max) * invT);
            sum += p[i];
        }
        // top-p: smallest prefix whose mass reaches topP (always at least one token)
        if (params.topP() < 1) {
            double cum = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++) {
                cum += p[i] / sum;
                if (cum >= params.topP()) {
                    cut = i + 1;
                    break;
                }
            }
            keep = cut;
        }
        // min-p: drop tokens below minP * p(best); p[0] is the best
        if (params.minP() > 0) {
            double floor = params.minP() * p[0];
            int cut = 1;
            while (cut < keep && p[cut] >= floor) {
                cut++;
            }
            keep = cut;
        }
        double total = 0;
        for (int i = 0; i < keep; i++) {
            total += p[i];
        }
        double u = random.nextDouble() * total;
        for (int i = 0; i < keep; i++) {
            u -= p[i];
            if (u < 0) {
                return (int) order[i];
            }
        }
        return (int) order[keep - 1];
    }

    /** Fills {@code order} with non-NaN token ids sorted by logit descending (ties: lower id first); returns the count. */
    private int sortCandidates(float[] l) {
        if (order.length != l.length) {
            order = new long[l.length];
        }
        int n = 0;
        for (int i = 0; i < l.length; i++) {
            if (!Float.isNaN(l[i]) && l[i] != Float.NEGATIVE_INFINITY) {
                int bits = Float.floatToIntBits(l[i]);
                int sortable = bits >= 0 ? bits : bits ^ 0x7fffffff;   // monotone in the float value
                // ascending sort of (~sortable, id) = descending logit, ascending id
                order[n++] = ((long) ~sortable << 32) | (i & 0xffffffffL);
            }
        }
        if (n == 0) {
            throw new IllegalStateException("no finite logit to sample from");
        }
        Arrays.sort(order, 0, n);
        for (int i = 0; i < n; i++) {
            order[i] = order[i] & 0xffffffffL;
        }
        return n;
    }
}
