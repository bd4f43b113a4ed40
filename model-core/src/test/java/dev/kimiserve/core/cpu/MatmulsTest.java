package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;

import dev.kimiserve.core.reference.ReferenceOps;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.testing.TestData;
import dev.kimiserve.core.testing.Tensors;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The vector matmul kernels against the double-precision reference: odd shapes, every dtype, strided outputs. */
class MatmulsTest {
    static final CpuPool POOL = new CpuPool(3);

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    static Stream<Arguments> shapes() {
        return Stream.of(DType.BF16, DType.F32, DType.F16).flatMap(d -> Stream.of(
                Arguments.of(d, 1, 64, 1), Arguments.of(d, 7, 64, 3), Arguments.of(d, 35, 37, 5),
                Arguments.of(d, 33, 96, 9), Arguments.of(d, 130, 1000, 4), Arguments.of(d, 17, 31, 70)));
    }

    /**
     * A row's result does not depend on the rows computed with it (the 4-row kernels reduce exactly as the 1-row
     * kernel does): a sequence decoded in a batch gets the same bits as decoded alone, so a re-run after a worker
     * failure, in whatever batch, reproduces the tokens already sent.
     */
    @ParameterizedTest(name = "{0} W[{1},{2}] x {3} rows")
    @MethodSource("shapes")
    void eachRowGetsTheSameBitsAloneAndInABatch(DType dtype, int out, int in, int rows) {
        SplittableRandom rnd = new SplittableRandom(out * 7L + in);
        Tensor w = Tensors.random("w", dtype, rnd, out, in);
        float[] paired = pairRows(TestData.normal(rnd, rows * in, 1), rows, in);
        float[] batch = new float[rows * out];
        new Matmuls(POOL).run(new MatmulJob().set(WeightMatrix.of(w), paired, 0, in, rows, batch, 0, out));
        for (int r = 0; r < rows; r++) {
            float[] alone = new float[out];
            new Matmuls(POOL).run(new MatmulJob().set(WeightMatrix.of(w), Arrays.copyOfRange(paired, r * in, (r + 1) * in), 0, in, 1, alone, 0, out));
            org.junit.jupiter.api.Assertions.assertArrayEquals(alone, Arrays.copyOfRange(batch, r * out, (r + 1) * out),
                    "row " + r + " of " + rows);
        }
    }

    @ParameterizedTest(name = "{0} W[{1},{2}] x {3} rows")
    @MethodSource("shapes")
    void plainMatmulMatchesReference(DType dtype, int out, int in, int rows) {
        SplittableRandom rnd = new SplittableRandom(out * 31L + in);
        Tensor w = Tensors.random("w", dtype, rnd, out, in);
        float[] x = TestData.normal(rnd, rows * in, 1);
        float[] paired = pairRows(x, rows, in);
        // write into a strided, offset output with poisoned gaps
        int stride = out + 3;
        float[] y = new float[2 + rows * stride];
        Arrays.fill(y, Float.NaN);
        new Matmuls(POOL).run(new MatmulJob().set(WeightMatrix.of(w), paired, 0, in, rows, y, 2, stride));
        float[] got = new float[rows * out];
        float[] want = new float[rows * out];
        for (int r = 0; r < rows; r++) {
            double[] ref = ReferenceOps.matvec(w, toDouble(x, r * in, in));
            for (int o = 0; o < out; o++) {
                want[r * out + o] = (float) ref[o];
                got[r * out + o] = y[2 + r * stride + o];
            }
            for (int g = out; g < stride && 2 + r * stride + g < y.length; g++) {
                org.junit.jupiter.api.Assertions.assertTrue(Float.isNaN(y[2 + r * stride + g]), "kernel wrote outside its rows");
            }
        }
        assertRelRms(dtype + " matmul " + out + "x" + in + " rows " + rows, want, got, 2e-6);
    }

    @ParameterizedTest(name = "{0} swiglu W[{1},{2}] x {3} rows")
    @MethodSource("shapes")
    void fusedSwigluMatchesReference(DType dtype, int width, int in, int rows) {
        SplittableRandom rnd = new SplittableRandom(width * 7L + in);
        Tensor gate = Tensors.random("gate", dtype, rnd, width, in);
        Tensor up = Tensors.random("up", dtype, rnd, width, in);
        float[] x = TestData.normal(rnd, rows * in, 1);
        float[] y = new float[rows * width];
        new Matmuls(POOL).run(new MatmulJob().swiglu(WeightMatrix.of(gate), WeightMatrix.of(up), pairRows(x, rows, in), 0, in, rows, y, 0, width));
        float[] want = new float[rows * width];
        for (int r = 0; r < rows; r++) {
            double[] g = ReferenceOps.matvec(gate, toDouble(x, r * in, in));
            double[] u = ReferenceOps.matvec(up, toDouble(x, r * in, in));
            for (int o = 0; o < width; o++) {
                want[r * width + o] = (float) (ReferenceOps.silu(g[o]) * u[o]);
            }
        }
        assertRelRms(dtype + " swiglu", want, y, 2e-6);
    }

    @Test
    void severalJobsInOneRegion() {
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor a = Tensors.random("a", DType.BF16, rnd, 40, 64);
        Tensor b = Tensors.random("b", DType.BF16, rnd, 3, 64);
        float[] x = TestData.normal(rnd, 2 * 64, 1);
        float[] p = pairRows(x, 2, 64);
        float[] ya = new float[2 * 40];
        float[] yb = new float[2 * 3];
        MatmulJob[] jobs = {new MatmulJob().set(WeightMatrix.of(a), p, 2, ya), new MatmulJob().set(WeightMatrix.of(b), p, 2, yb)};
        new Matmuls(POOL).run(jobs, 2);
        for (int r = 0; r < 2; r++) {
            double[] ra = ReferenceOps.matvec(a, toDouble(x, r * 64, 64));
            double[] rb = ReferenceOps.matvec(b, toDouble(x, r * 64, 64));
            assertRelRms("job a", toFloat(ra), Arrays.copyOfRange(ya, r * 40, r * 40 + 40), 2e-6);
            assertRelRms("job b", toFloat(rb), Arrays.copyOfRange(yb, r * 3, r * 3 + 3), 2e-6);
        }
    }

    static float[] pairRows(float[] x, int rows, int in) {
        float[] p = new float[x.length];
        for (int r = 0; r < rows; r++) {
            Vec.pairOrder(x, r * in, in, p, r * in);
        }
        return p;
    }

    static double[] toDouble(float[] x, int off, int n) {
        double[] d = new double[n];
        for (int i = 0; i < n; i++) {
            d[i] = x[off + i];
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
