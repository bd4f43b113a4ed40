package dev.kimiserve.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kimiserve.core.config.MoeConfig;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Expert selection: bias for selection only, group limits, renormalisation, scaling, and the remote-code variant. */
class RoutingTest {
    static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    @Test
    void biasSelectsButUnbiasedScoresWeigh() {
        MoeConfig cfg = new MoeConfig(4, 2, 8, 0, 1, 1, true, 2.0f, false);
        double[] logits = {2.0, 1.0, 0.0, -1.0};
        float[] bias = {0f, 0f, 0f, 5f};          // expert 3 gets selected only because of its bias
        int[] ids = new int[2];
        double[] w = new double[2];
        Routing.route(cfg, logits, bias, ids, w);
        assertArrayEquals(new int[]{3, 0}, ids);
        double s3 = sigmoid(-1), s0 = sigmoid(2);
        assertEquals(2.0 * s3 / (s3 + s0), w[0], 1e-12);
        assertEquals(2.0 * s0 / (s3 + s0), w[1], 1e-12);
    }

    @Test
    void remoteCodeVariantWeighsWithTheBiasedScores() {
        MoeConfig cfg = new MoeConfig(4, 2, 8, 0, 1, 1, true, 1.0f, true);
        int[] ids = new int[2];
        double[] w = new double[2];
        Routing.route(cfg, new double[]{2.0, 1.0, 0.0, -1.0}, new float[]{0f, 0f, 0f, 5f}, ids, w);
        double b3 = sigmoid(-1) + 5, b0 = sigmoid(2);
        assertEquals(b3 / (b3 + b0), w[0], 1e-12);
    }

    @Test
    void groupLimitedTopKKeepsOnlyTheBestGroups() {
        // 8 experts in 4 groups of 2; keep 2 groups; group score = sum of its two scores
        MoeConfig cfg = new MoeConfig(8, 2, 8, 0, 4, 2, false, 1.0f, false);
        double[] logits = {3.0, -3.0, 1.0, 1.0, 2.5, -3.0, 0.5, 0.4};
        int[] ids = new int[2];
        double[] w = new double[2];
        Routing.route(cfg, logits, new float[8], ids, w);
        // groups: {0,1} ~ .95+.05=1.0, {2,3} ~ 1.46, {4,5} ~ .92+.05=.97, {6,7} ~ 1.22 -> keep {2,3} and {6,7}
        int[] sorted = ids.clone();
        Arrays.sort(sorted);
        assertArrayEquals(new int[]{2, 3}, sorted);
        assertEquals(sigmoid(1.0), w[0], 1e-12); // no renormalisation
    }
}
