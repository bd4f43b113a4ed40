package dev.kimiserve.core.testing;

import java.util.SplittableRandom;

/** Seeded random arrays for kernel tests. */
public final class TestData {
    private TestData() {
    }

    public static float[] normal(SplittableRandom rnd, int n, double std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (gaussian(rnd) * std);
        }
        return x;
    }

    public static float[] uniform(SplittableRandom rnd, int n, double lo, double hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return x;
    }

    public static double gaussian(SplittableRandom rnd) {
        double u1 = rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }
}
