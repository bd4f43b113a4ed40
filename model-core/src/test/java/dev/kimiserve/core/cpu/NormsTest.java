package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;

import dev.kimiserve.core.reference.ReferenceOps;
import dev.kimiserve.core.testing.TestData;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The vectorised norms and gates against the double-precision reference, odd lengths included. */
class NormsTest {
    @ParameterizedTest(name = "n={0}")
    @ValueSource(ints = {1, 15, 16, 33, 64, 100, 1024})
    void normsAndGatesMatchReference(int n) {
        SplittableRandom rnd = new SplittableRandom(n);
        float[] x = TestData.normal(rnd, n, 3);
        float[] w = TestData.uniform(rnd, n, 0.5, 1.5);
        float[] y = new float[n];
        Norms.rmsNorm(x, 0, n, w, 1e-5f, y, 0);
        assertRelRms("rmsnorm", toFloat(ReferenceOps.rmsNorm(toDouble(x), w, 1e-5)), y, 1e-6);

        float[] l2 = x.clone();
        Norms.l2Normalize(l2, 0, n, 1e-6f, 0.5f);
        double[] ref = ReferenceOps.l2Normalize(toDouble(x), 1e-6);
        for (int i = 0; i < n; i++) {
            ref[i] *= 0.5;
        }
        assertRelRms("l2norm", toFloat(ref), l2, 1e-6);

        float[] gate = TestData.normal(rnd, n, 4);
        float[] o = x.clone();
        Norms.gatedRmsNorm(o, 0, n, w, 1e-5f, gate, 0);
        double[] normed = ReferenceOps.rmsNorm(toDouble(x), w, 1e-5);
        for (int i = 0; i < n; i++) {
            normed[i] *= ReferenceOps.sigmoid(gate[i]);
        }
        assertRelRms("gated rmsnorm", toFloat(normed), o, 2e-6);

        // the gate crosses softplus' threshold (a + bias > 20) and very negative values
        float[] a = TestData.uniform(rnd, n, -40, 40);
        float[] bias = TestData.uniform(rnd, n, -2, 2);
        float[] g = a.clone();
        Norms.kdaGate(g, 0, n, bias, 0, -3.5f);
        double[] gRef = new double[n];
        for (int i = 0; i < n; i++) {
            gRef[i] = -3.5 * ReferenceOps.softplus((double) a[i] + bias[i]);
        }
        assertRelRms("kda gate", toFloat(gRef), g, 2e-6);

        float[] s = a.clone();
        Norms.sigmoidInPlace(s, 0, n);
        double[] sRef = new double[n];
        for (int i = 0; i < n; i++) {
            sRef[i] = ReferenceOps.sigmoid(a[i]);
        }
        assertRelRms("sigmoid", toFloat(sRef), s, 1e-6);
    }

    static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }
}
