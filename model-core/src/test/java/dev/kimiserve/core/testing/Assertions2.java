package dev.kimiserve.core.testing;

import static org.junit.jupiter.api.Assertions.fail;

/** Numeric comparisons whose failure messages name the tensor and the worst element. */
public final class Assertions2 {
    private Assertions2() {
    }

    public static double maxAbsDiff(float[] expected, float[] actual) {
        if (expected.length != actual.length) {
            throw new AssertionError("length " + actual.length + " != expected " + expected.length);
        }
        double max = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs((double) expected[i] - actual[i]);
            if (Double.isNaN(d)) {
                return Double.NaN;
            }
            max = Math.max(max, d);
        }
        return max;
    }

    public static void assertClose(String what, float[] expected, float[] actual, double atol) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + " != expected " + expected.length);
        }
        int worst = -1;
        double max = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs((double) expected[i] - actual[i]);
            if (Double.isNaN(d) || d > max) {
                max = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                worst = i;
            }
        }
        if (max > atol) {
            fail(String.format("%s: max |diff| %.3g > %.3g at index %d (expected %s, got %s)", what, max, atol, worst,
                    expected[worst], actual[worst]));
        }
    }

    /** ||expected - actual|| / ||expected|| (fla's metric). */
    public static double relRms(float[] expected, float[] actual) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = (double) expected[i] - actual[i];
            num += d * d;
            den += (double) expected[i] * expected[i];
        }
        return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
    }

    public static void assertRelRms(String what, float[] expected, float[] actual, double tol) {
        double r = relRms(expected, actual);
        if (!(r <= tol)) {
            fail(String.format("%s: relative RMS error %.3g > %.3g", what, r, tol));
        }
    }
}
