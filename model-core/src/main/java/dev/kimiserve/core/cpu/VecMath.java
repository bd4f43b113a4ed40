package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.cpu.Vec.F;
import static dev.kimiserve.core.cpu.Vec.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

/**
 * Lane reductions and transcendental functions that give the same bits in every JIT tier.
 *
 * <p>The Vector API's {@code reduceLanes(ADD)} leaves the order of the additions unspecified and its lanewise
 * {@code EXP} / {@code LOG1P} use different implementations when C2 intrinsifies them (SVML-style stubs) than in the
 * interpreter and C1 (per-lane {@code Math} calls). A worker's first tokens are computed before C2 has compiled the
 * kernels, so with those operations the same request gave different logits early and late in a process, and a
 * sequence replayed after a worker failure could diverge from the tokens the client already had. Everything here is
 * built from lanewise add, multiply, fma, min/max, shuffles and integer bit operations, which IEEE 754 and the Vector
 * API define exactly.
 */
public final class VecMath {
    /** Lane i takes lane i + w (mod L), for w = 8, 4, 2, 1 (those below L are used). */
    private static final VectorShuffle<Float> ROTATE_8 = rotate(8);
    private static final VectorShuffle<Float> ROTATE_4 = rotate(4);
    private static final VectorShuffle<Float> ROTATE_2 = rotate(2);
    private static final VectorShuffle<Float> ROTATE_1 = rotate(1);
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    /** Below this e^x is under the smallest normal float: the result is 0. */
    static final float EXP_MIN = -87.33654f;
    /** Above this e^x saturates at e^EXP_MAX (about 2.4e38) instead of overflowing. */
    static final float EXP_MAX = 88.37626f;

    private VecMath() {
    }

    private static VectorShuffle<Float> rotate(int w) {
        return VectorShuffle.iota(F, w % L, 1, true);
    }

    /**
     * Sum of the lanes, pairwise by halves: lane i + lane i+L/2, then i + L/4, ... Straight-line code on constant
     * shuffles (up to 16 lanes; wider vectors are not made by any CPU the JDK supports) so that C2 inlines it into
     * the matmul micro-kernels without boxing.
     */
    public static float sum(FloatVector v) {
        if (L > 16) {
            throw new IllegalStateException(L + "-lane float vectors are not supported");
        }
        if (L >= 16) {
            v = v.add(v.rearrange(ROTATE_8));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(ROTATE_4));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(ROTATE_2));
        }
        if (L >= 2) {
            v = v.add(v.rearrange(ROTATE_1));
        }
        return v.lane(0);
    }

    /** The same sum as {@link #sum} over a float[L], in scalar code (the reference the tests hold it against). */
    static float sumReference(float[] lanes) {
        float[] t = lanes.clone();
        for (int w = t.length / 2; w >= 1; w /= 2) {
            float[] next = t.clone();
            for (int i = 0; i < t.length; i++) {
                next[i] = t[i] + t[(i + w) % t.length];
            }
            t = next;
        }
        return t[0];
    }

    /**
     * e^x per lane, relative error under 3e-7: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor polynomial,
     * 2^n from the exponent bits. 0 below {@link #EXP_MIN}; saturates above {@link #EXP_MAX}; NaN stays NaN.
     */
    public static FloatVector exp(FloatVector x) {
        var under = x.compare(VectorOperators.LT, EXP_MIN);
        FloatVector xc = x.min(EXP_MAX).max(EXP_MIN);
        FloatVector shifted = xc.mul(LOG2E).add(ROUNDER);
        FloatVector n = shifted.sub(ROUNDER);
        IntVector ni = shifted.reinterpretAsInts().sub(ROUNDER_BITS);
        FloatVector r = n.neg().fma(FloatVector.broadcast(F, LN2_HI), xc);
        r = n.neg().fma(FloatVector.broadcast(F, LN2_LO), r);
        FloatVector p = FloatVector.broadcast(F, 1f / 5040f);
        p = p.fma(r, FloatVector.broadcast(F, 1f / 720f));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 120f));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 24f));
        p = p.fma(r, FloatVector.broadcast(F, 1f / 6f));
        p = p.fma(r, FloatVector.broadcast(F, 0.5f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        FloatVector scale = ni.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale).blend(0f, under);
    }

    /** 1 / (1 + e^-x) per lane, from e^-|x| so that neither side overflows. */
    public static FloatVector sigmoid(FloatVector x) {
        FloatVector e = exp(x.abs().neg());
        FloatVector one = FloatVector.broadcast(F, 1f);
        FloatVector denominator = one.add(e);
        return one.div(denominator).blend(e.div(denominator), x.compare(VectorOperators.LT, 0f));
    }

    /**
     * log(1 + e^x) per lane, as PyTorch computes it (x itself above 20), from max(x, 0) + log1p(e^-|x|); log1p(e)
     * for e in (0, 1] is 2 atanh(e / (2 + e)) by its series, which converges fast since e / (2 + e) <= 1/3.
     */
    public static FloatVector softplus(FloatVector x) {
        FloatVector e = exp(x.abs().neg());
        FloatVector t = e.div(e.add(2f));
        FloatVector t2 = t.mul(t);
        FloatVector s = FloatVector.broadcast(F, 1f / 15f);
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 13f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 11f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 9f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 7f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 5f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f / 3f));
        s = s.fma(t2, FloatVector.broadcast(F, 1f));
        FloatVector log1p = t.mul(s).mul(2f);
        FloatVector result = x.max(0f).add(log1p);
        return result.blend(x, x.compare(VectorOperators.GT, 20f));
    }
}
