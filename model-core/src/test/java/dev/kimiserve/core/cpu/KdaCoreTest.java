package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.cpu.Functions;
import dev.kimiserve.core.reference.ReferenceOps;
import dev.kimiserve.core.testing.TestData;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The chunked and recurrent KDA forms against each other and against the double-precision recurrence, on random
 * inputs: lengths around the chunk size, several heads, head dims that are not powers of two, gates strong enough that
 * the naive exp(G)/exp(-G) factorisation overflows, a non-zero initial state, and prefill split in two.
 */
class KdaCoreTest {
    static final double TOL = 1e-5;

    record Case(String name, int length, int heads, int kd, int vd, double gateScale, long seed) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                new Case("T=1 H=3 K=V=24", 1, 3, 24, 24, 1, 1),
                new Case("T=63 H=2 K=24 V=40", 63, 2, 24, 40, 1, 2),
                new Case("T=64 H=3 K=V=32", 64, 3, 32, 32, 1, 3),
                new Case("T=65 H=2 K=V=20", 65, 2, 20, 20, 1, 4),
                new Case("T=200 H=3 K=V=24", 200, 3, 24, 24, 1, 5),
                new Case("T=200 H=2 K=V=24 strong decay", 200, 2, 24, 24, 30, 6),
                new Case("T=130 H=2 K=36 V=12 strong decay", 130, 2, 36, 12, 12, 7)).map(Arguments::of);
    }

    /** Inputs as the mixer produces them: q L2-normed and scaled, k L2-normed, g <= 0, beta in (0,1). */
    record Inputs(float[] q, float[] k, float[] v, float[] g, float[] beta, float[] s0) {
        static Inputs random(Case c) {
            SplittableRandom rnd = new SplittableRandom(c.seed);
            int t = c.length;
            float[] q = TestData.normal(rnd, t * c.heads * c.kd, 1);
            float[] k = TestData.normal(rnd, t * c.heads * c.kd, 1);
            for (int r = 0; r < t * c.heads; r++) {
                Functions.l2NormalizeInPlace(q, r * c.kd, c.kd, 1e-6f, (float) (1 / Math.sqrt(c.kd)));
                Functions.l2NormalizeInPlace(k, r * c.kd, c.kd, 1e-6f, 1f);
            }
            float[] v = TestData.normal(rnd, t * c.heads * c.vd, 1);
            // g = -exp(A_log) * softplus(a): per-token decay up to -gateScale * 2.x nats
            float[] g = new float[t * c.heads * c.kd];
            for (int i = 0; i < g.length; i++) {
                g[i] = (float) (-c.gateScale * rnd.nextDouble() * Functions.softplus((float) TestData.gaussian(rnd)));
            }
            float[] beta = TestData.uniform(rnd, t * c.heads, 0.05, 0.95);
            float[] s0 = TestData.normal(rnd, c.heads * c.kd * c.vd, 0.1);
            return new Inputs(q, k, v, g, beta, s0);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void chunkedAndRecurrentMatchTheDoubleRecurrence(Case c) {
        Inputs in = Inputs.random(c);
        float[] sRec = in.s0.clone();
        float[] oRec = new float[c.length * c.heads * c.vd];
        KdaCore.recurrent(in.q, in.k, in.v, in.g, in.beta, 0, c.length, c.heads, c.kd, c.vd, sRec, oRec);
        float[] sChunk = in.s0.clone();
        float[] oChunk = new float[oRec.length];
        KdaCore.chunked(in.q, in.k, in.v, in.g, in.beta, 0, c.length, c.heads, c.kd, c.vd, sChunk, oChunk);

        float[] sRef = new float[sRec.length];
        float[] oRef = new float[oRec.length];
        referenceRecurrence(c, in, oRef, sRef);
        assertRelRms(c + " recurrent output", oRef, oRec, TOL);
        assertRelRms(c + " recurrent state", sRef, sRec, TOL);
        assertRelRms(c + " chunked output", oRef, oChunk, TOL);
        assertRelRms(c + " chunked state", sRef, sChunk, TOL);
        assertRelRms(c + " chunked vs recurrent output", oRec, oChunk, TOL);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void chunkedPrefillInTwoPartsEqualsOnePart(Case c) {
        Inputs in = Inputs.random(c);
        float[] sOne = in.s0.clone();
        float[] oOne = new float[c.length * c.heads * c.vd];
        KdaCore.chunked(in.q, in.k, in.v, in.g, in.beta, 0, c.length, c.heads, c.kd, c.vd, sOne, oOne);
        int split = Math.max(1, c.length * 3 / 7);
        float[] sTwo = in.s0.clone();
        float[] oTwo = new float[oOne.length];
        KdaCore.chunked(in.q, in.k, in.v, in.g, in.beta, 0, split, c.heads, c.kd, c.vd, sTwo, oTwo);
        if (split < c.length) {
            KdaCore.chunked(in.q, in.k, in.v, in.g, in.beta, split, c.length - split, c.heads, c.kd, c.vd, sTwo, oTwo);
        }
        assertRelRms(c + " split output", oOne, oTwo, TOL);
        assertRelRms(c + " split state", sOne, sTwo, TOL);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void outputsStayFiniteWhereTheNaiveFactorisationOverflows(Case c) {
        Inputs in = Inputs.random(c);
        if (c.gateScale < 10) {
            return;
        }
        // the cumulative decay within one chunk reaches far below -88: exp(-G) overflows fp32 there
        double worst = 0;
        for (int h = 0; h < c.heads; h++) {
            for (int d = 0; d < c.kd; d++) {
                double cum = 0;
                for (int t = 0; t < Math.min(KdaCore.CHUNK, c.length); t++) {
                    cum += in.g[(t * c.heads + h) * c.kd + d];
                }
                worst = Math.min(worst, cum);
            }
        }
        assertTrue(worst < -88, "test gates too weak to overflow a naive factorisation: " + worst);
        assertTrue(Float.isInfinite((float) Math.exp(-worst)), "exp(-G) should overflow fp32");
        float[] s = in.s0.clone();
        float[] o = new float[c.length * c.heads * c.vd];
        KdaCore.chunked(in.q, in.k, in.v, in.g, in.beta, 0, c.length, c.heads, c.kd, c.vd, s, o);
        for (float x : o) {
            assertTrue(Float.isFinite(x), "non-finite output");
        }
        for (float x : s) {
            assertTrue(Float.isFinite(x), "non-finite state");
        }
    }

    /** The spec's recurrence in double, through ReferenceOps.kdaStep. */
    static void referenceRecurrence(Case c, Inputs in, float[] out, float[] finalState) {
        for (int h = 0; h < c.heads; h++) {
            double[][] s = new double[c.kd][c.vd];
            for (int i = 0; i < c.kd; i++) {
                for (int j = 0; j < c.vd; j++) {
                    s[i][j] = in.s0[(h * c.kd + i) * c.vd + j];
                }
            }
            for (int t = 0; t < c.length; t++) {
                double[] q = new double[c.kd];
                double[] k = new double[c.kd];
                double[] g = new double[c.kd];
                double[] v = new double[c.vd];
                for (int i = 0; i < c.kd; i++) {
                    q[i] = in.q[(t * c.heads + h) * c.kd + i];
                    k[i] = in.k[(t * c.heads + h) * c.kd + i];
                    g[i] = in.g[(t * c.heads + h) * c.kd + i];
                }
                for (int j = 0; j < c.vd; j++) {
                    v[j] = in.v[(t * c.heads + h) * c.vd + j];
                }
                double[] o = ReferenceOps.kdaStep(s, q, k, v, g, in.beta[t * c.heads + h]);
                for (int j = 0; j < c.vd; j++) {
                    out[(t * c.heads + h) * c.vd + j] = (float) o[j];
                }
            }
            for (int i = 0; i < c.kd; i++) {
                for (int j = 0; j < c.vd; j++) {
                    finalState[(h * c.kd + i) * c.vd + j] = (float) s[i][j];
                }
            }
        }
    }
}
