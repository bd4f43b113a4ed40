package dev.kimiserve.core.model;

import dev.kimiserve.core.config.MoeConfig;

/**
 * MoE expert selection (spec section 6.2), shared by every backend because it is cheap and must be identical:
 * sigmoid scores, correction bias for selection, group-limited top-k (group score = sum of its two best selection
 * scores), weights from the unbiased scores (or the biased ones in the remote-code variant), renormalisation and
 * routed scaling. Ties go to the lower expert index.
 */
public final class Routing {
    private Routing() {
    }

    /** Per-thread work arrays, so that routing allocates nothing per token. */
    private static final class Scratch {
        double[] scores = new double[0];
        double[] choice = new double[0];
        boolean[] taken = new boolean[0];
        double[] groupScore = new double[0];
        boolean[] keep = new boolean[0];

        Scratch fit(int experts, int groups) {
            if (scores.length < experts) {
                scores = new double[experts];
                choice = new double[experts];
                taken = new boolean[experts];
            }
            if (groupScore.length < groups) {
                groupScore = new double[groups];
                keep = new boolean[groups];
            }
            return this;
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /**
     * @param logits   router logits [E] (fp32 or better)
     * @param bias     e_score_correction_bias [E]
     * @param experts  output: chosen expert ids [k]
     * @param weights  output: their weights [k], scaled by routed_scaling_factor
     */
    public static void route(MoeConfig cfg, double[] logits, float[] bias, int[] experts, double[] weights) {
        int e = cfg.numExperts();
        int k = cfg.expertsPerToken();
        Scratch sc = SCRATCH.get().fit(e, cfg.numExpertGroups());
        double[] scores = sc.scores;
        double[] choice = sc.choice;
        for (int i = 0; i < e; i++) {
            scores[i] = 1.0 / (1.0 + Math.exp(-logits[i]));
            choice[i] = scores[i] + bias[i];
        }
        if (cfg.numExpertGroups() > 1) {
            maskGroups(cfg, choice, sc);
        }
        boolean[] taken = sc.taken;
        java.util.Arrays.fill(taken, 0, e, false);
        for (int slot = 0; slot < k; slot++) {
            int best = -1;
            for (int i = 0; i < e; i++) {
                if (!taken[i] && choice[i] != Double.NEGATIVE_INFINITY && (best < 0 || choice[i] > choice[best])) {
                    best = i;
                }
            }
            taken[best] = true;
            experts[slot] = best;
            weights[slot] = cfg.weightsUseCorrectionBias() ? scores[best] + bias[best] : scores[best];
        }
        if (cfg.renormalize()) {
            double sum = 1e-20;
            for (int slot = 0; slot < k; slot++) {
                sum += weights[slot];
            }
            for (int slot = 0; slot < k; slot++) {
                weights[slot] /= sum;
            }
        }
        for (int slot = 0; slot < k; slot++) {
            weights[slot] *= cfg.routedScalingFactor();
        }
    }

    /** Keeps the topk_group groups with the best (top-2 sum) selection scores; the rest become -inf. */
    private static void maskGroups(MoeConfig cfg, double[] choice, Scratch sc) {
        int groups = cfg.numExpertGroups();
        int per = cfg.expertsPerGroup();
        double[] groupScore = sc.groupScore;
        for (int g = 0; g < groups; g++) {
            double first = Double.NEGATIVE_INFINITY;
            double second = Double.NEGATIVE_INFINITY;
            for (int i = g * per; i < (g + 1) * per; i++) {
                if (choice[i] > first) {
                    second = first;
                    first = choice[i];
                } else if (choice[i] > second) {
                    second = choice[i];
                }
            }
            groupScore[g] = first + second;
        }
        boolean[] keep = sc.keep;
        java.util.Arrays.fill(keep, 0, groups, false);
        for (int n = 0; n < cfg.topkGroups(); n++) {
            int best = -1;
            for (int g = 0; g < groups; g++) {
                if (!keep[g] && (best < 0 || groupScore[g] > groupScore[best])) {
                    best = g;
                }
            }
            keep[best] = true;
        }
        for (int g = 0; g < groups; g++) {
            if (!keep[g]) {
                for (int i = g * per; i < (g + 1) * per; i++) {
                    choice[i] = Double.NEGATIVE_INFINITY;
                }
            }
        }
    }
}
