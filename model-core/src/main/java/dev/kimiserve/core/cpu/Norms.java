package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** Vectorised normalisations and gates (fp32, statistics accumulated in fp32 vectors). */
final class Norms {
    private Norms() {
    }

    /** y[yo..] = w * x / sqrt(mean(x^2) + eps) over dim elements (y may be x). */
    static void rmsNorm(float[] x, int xo, int dim, float[] w, float eps, float[] y, int yo) {
        float inv = (float) (1.0 / Math.sqrt(Vec.sumSquares(x, xo, dim) / dim + eps));
        FloatVector s = FloatVector.broadcast(F, inv);
        int i = 0;
        for (; i <= dim - L; i += L) {
            FloatVector.fromArray(F, x, xo + i).mul(s).mul(FloatVector.fromArray(F, w, i)).intoArray(y, yo + i);
        }
        for (; i < dim; i++) {
            y[yo + i] = w[i] * (x[xo + i] * inv);
        }
    }

    /** x[off..] scaled to unit L2 norm (eps inside the root), times scale. */
    static void l2Normalize(float[] x, int off, int n, float eps, float scale) {
        Vec.scale(x, off, n, (float) (scale / Math.sqrt(Vec.sumSquares(x, off, n) + eps)));
    }

    /** o = w * rmsnorm(o) * sigmoid(gate) over n elements (KDA's per-head gated norm). */
    static void gatedRmsNorm(float[] o, int oo, int n, float[] w, float eps, float[] gate, int go) {
        float inv = (float) (1.0 / Math.sqrt(Vec.sumSquares(o, oo, n) / n + eps));
        FloatVector s = FloatVector.broadcast(F, inv);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector sig = VecMath.sigmoid(FloatVector.fromArray(F, gate, go + i));
            FloatVector.fromArray(F, o, oo + i).mul(s).mul(FloatVector.fromArray(F, w, i)).mul(sig).intoArray(o, oo + i);
        }
        for (; i < n; i++) {
            o[oo + i] = w[i] * (o[oo + i] * inv) * Functions.sigmoid(gate[go + i]);
        }
    }

    /** x = sigmoid(x) over n elements. */
    static void sigmoidInPlace(float[] x, int off, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            VecMath.sigmoid(FloatVector.fromArray(F, x, off + i)).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] = Functions.sigmoid(x[off + i]);
        }
    }

    /** g = rate * softplus(g + bias) over n elements (softplus with PyTorch's threshold 20). */
    static void kdaGate(float[] g, int off, int n, float[] bias, int bo, float rate) {
        FloatVector r = FloatVector.broadcast(F, rate);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector z = FloatVector.fromArray(F, g, off + i).add(FloatVector.fromArray(F, bias, bo + i));
            VecMath.softplus(z).mul(r).intoArray(g, off + i);
        }
        for (; i < n; i++) {
            g[off + i] = rate * Functions.softplus(g[off + i] + bias[bo + i]);
        }
    }
}
