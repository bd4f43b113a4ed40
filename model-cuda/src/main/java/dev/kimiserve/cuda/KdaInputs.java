package dev.kimiserve.cuda;

import java.util.SplittableRandom;

/** Random KDA inputs with the model's properties: unit-norm q/k rows, log decays <= 0, betas in (0, 1). */
public final class KdaInputs {
    private KdaInputs() {
    }

    /** {@code rows} rows of length {@code dim}, each of L2 norm {@code norm}. */
    public static float[] unitRows(SplittableRandom rnd, int rows, int dim, float norm) {
        float[] x = normal(rnd, rows * dim);
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int i = 0; i < dim; i++) {
                ss += (double) x[r * dim + i] * x[r * dim + i];
            }
            float scale = (float) (norm / Math.sqrt(ss + 1e-6));
            for (int i = 0; i < dim; i++) {
                x[r * dim + i] *= scale;
            }
        }
        return x;
    }

    public static float[] normal(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian());
        }
        return x;
    }

    /** Log decays as the model makes them, -exp(A) softplus(.): mostly in [-3, 0], a few strongly negative. */
    public static float[] logDecay(SplittableRandom rnd, int n) {
        float[] g = new float[n];
        for (int i = 0; i < n; i++) {
            double z = rnd.nextGaussian() * 2 - 1;
            g[i] = (float) (-Math.log1p(Math.exp(z)) * (rnd.nextInt(50) == 0 ? 40 : 1));
        }
        return g;
    }

    public static float[] uniform(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextDouble(0.01, 0.99);
        }
        return x;
    }
}
