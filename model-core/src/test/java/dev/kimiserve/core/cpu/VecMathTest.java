package dev.kimiserve.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/** The tier-independent vector math against scalar references. */
class VecMathTest {
    static final int L = Vec.L;

    static float[] apply(java.util.function.UnaryOperator<FloatVector> f, float[] x) {
        float[] out = new float[L];
        f.apply(FloatVector.fromArray(Vec.F, x, 0)).intoArray(out, 0);
        return out;
    }

    @Test
    void sumIsTheFixedPairwiseTree() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (int rep = 0; rep < 1000; rep++) {
            float[] x = new float[L];
            for (int i = 0; i < L; i++) {
                x[i] = (float) (rnd.nextDouble(-1, 1) * Math.pow(10, rnd.nextInt(-3, 4)));
            }
            assertEquals(Float.floatToRawIntBits(VecMath.sumReference(x)), Float.floatToRawIntBits(VecMath.sum(FloatVector.fromArray(Vec.F, x, 0))));
        }
    }

    @Test
    void expIsAccurateSaturatesAndKeepsNaN() {
        float[] x = new float[L];
        double worst = 0;
        for (float v = -87f; v <= 88f; v += 0.0137f) {
            for (int i = 0; i < L; i++) {
                x[i] = v + i * 1e-3f;
            }
            float[] got = apply(VecMath::exp, x);
            for (int i = 0; i < L; i++) {
                double want = Math.exp(x[i]);
                worst = Math.max(worst, Math.abs(got[i] - want) / want);
            }
        }
        assertTrue(worst < 3e-7, "relative error " + worst);
        float[] edge = new float[L];
        edge[0] = -100f;
        edge[1] = Float.NEGATIVE_INFINITY;
        edge[2] = Float.NaN;
        edge[3] = 0f;
        float[] got = apply(VecMath::exp, edge);
        assertEquals(0f, got[0]);
        assertEquals(0f, got[1]);
        assertTrue(Float.isNaN(got[2]));
        assertEquals(1f, got[3]);
    }

    @Test
    void sigmoidAndSoftplusMatchTheScalarFunctions() {
        SplittableRandom rnd = new SplittableRandom(9);
        for (int rep = 0; rep < 2000; rep++) {
            float[] x = new float[L];
            for (int i = 0; i < L; i++) {
                x[i] = (float) rnd.nextDouble(-60, 60);
            }
            float[] sig = apply(VecMath::sigmoid, x);
            float[] sp = apply(VecMath::softplus, x);
            for (int i = 0; i < L; i++) {
                double s = 1 / (1 + Math.exp(-x[i]));
                assertEquals(s, sig[i], 4e-7 * s + 1e-30, "sigmoid(" + x[i] + ")");
                double p = x[i] > 20 ? x[i] : Math.log1p(Math.exp(x[i]));
                assertEquals(p, sp[i], 4e-7 * p + 1e-30, "softplus(" + x[i] + ")");
            }
        }
    }
}
