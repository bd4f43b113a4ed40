package dev.kimiserve.core.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Sampling semantics: greedy, filters, penalties and seeded reproducibility. */
class SamplerTest {
    static final float[] LOGITS = {1.0f, 3.0f, 2.0f, -1.0f, 2.9f, 0.5f};

    static SamplingParams params(double t, int topK, double topP, double minP, Long seed) {
        return new SamplingParams(t, topK, topP, minP, 1, 0, 0, seed);
    }

    @Test
    void greedyPicksTheArgmaxAndTiesGoLow() {
        assertEquals(1, new Sampler(SamplingParams.GREEDY, LOGITS.length).sample(LOGITS, 0, null));
        assertEquals(0, Sampler.argmax(new float[]{2, 2, 1}));
        assertEquals(2, Sampler.argmax(new float[]{Float.NaN, 1, 3}));
    }

    @Test
    void topKOfOneAndTinyTopPAreGreedy() {
        for (long seed = 0; seed < 20; seed++) {
            assertEquals(1, new Sampler(params(1.5, 1, 1, 0, seed), 6).sample(LOGITS, 0, null));
            assertEquals(1, new Sampler(params(1.5, 0, 1e-6, 0, seed), 6).sample(LOGITS, 0, null));
        }
    }

    @Test
    void topKAndMinPRestrictTheSupport() {
        for (long seed = 0; seed < 200; seed++) {
            int k2 = new Sampler(params(5, 2, 1, 0, seed), 6).sample(LOGITS, 0, null);
            assertTrue(k2 == 1 || k2 == 4, "top-2 drew " + k2);
            // min_p 0.5 keeps tokens with p >= 0.5 p(best): at T=1 that is logits >= 3 - ln 2
            int m = new Sampler(params(1, 0, 1, 0.5, seed), 6).sample(LOGITS, 0, null);
            assertTrue(m == 1 || m == 4, "min-p drew " + m);
        }
    }

    @Test
    void temperatureSamplingFollowsTheSoftmax() {
        Sampler s = new Sampler(params(1, 0, 1, 0, 7L), 6);
        int[] counts = new int[6];
        int n = 60_000;
        for (int i = 0; i < n; i++) {
            counts[s.sample(LOGITS, 0, null)]++;
        }
        double z = 0;
        for (float l : LOGITS) {
            z += Math.exp(l);
        }
        for (int i = 0; i < 6; i++) {
            double p = Math.exp(LOGITS[i]) / z;
            double sd = Math.sqrt(n * p * (1 - p));
            assertTrue(Math.abs(counts[i] - n * p) < 5 * sd + 1, "token " + i + ": " + counts[i] + " vs expected " + n * p);
        }
    }

    @Test
    void sameSeedSameTokensOtherSeedOtherTokens() {
        int[] a = draw(11L);
        assertArrayEquals(a, draw(11L));
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(draw(12L)));
    }

    private static int[] draw(long seed) {
        Sampler s = new Sampler(params(2, 0, 0.95, 0, seed), 6);
        int[] out = new int[40];
        for (int i = 0; i < out.length; i++) {
            out[i] = s.sample(LOGITS, 0, null);
        }
        return out;
    }

    @Test
    void penaltiesFollowVllm() {
        SamplingParams p = new SamplingParams(0, 0, 1, 0, 2.0, 0.5, 0.25, null);
        Sampler s = new Sampler(p, 6);
        TokenHistory h = new TokenHistory(6, new int[]{0, 3});
        h.addOutput(1);
        h.addOutput(1);
        h.addOutput(5);
        float[] l = LOGITS.clone();
        s.applyPenalties(l, h);
        assertEquals(0.5f, l[0], 1e-6);                     // prompt token, positive: / 2
        assertEquals(3.0f / 2 - 0.25f * 2 - 0.5f, l[1], 1e-6); // generated twice: / 2, then - freq*2 - presence
        assertEquals(2.0f, l[2], 1e-6);                     // unseen
        assertEquals(-2.0f, l[3], 1e-6);                    // prompt token, negative: * 2
        assertEquals(0.25f - 0.25f - 0.5f, l[5], 1e-6);
        // with the penalties the argmax moves from token 1 to token 4
        assertEquals(4, s.sample(LOGITS, 0, h));
    }

    @Test
    void invalidParametersAreRejectedWithTheirName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(-1, 0, 1, 0, null)).getMessage().contains("temperature"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 0, 0, null)).getMessage().contains("top_p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, -2, 1, 0, null)).getMessage().contains("top_k"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 1, 1.5, null)).getMessage().contains("min_p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 0, 1, 0, 0, 0, 0, null)).getMessage().contains("repetition_penalty"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1, 0, 1, 0, 1, 3, 0, null)).getMessage().contains("presence_penalty"));
    }
}
