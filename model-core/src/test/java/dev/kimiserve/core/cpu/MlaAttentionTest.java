package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.reference.ReferenceOps;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.testing.TestData;
import dev.kimiserve.core.testing.Tensors;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * MLA attention paths against the spec's expanded attention in double precision, on random latents: prefill
 * (expanded, several key blocks), decode per (sequence, head) for short caches and decode split over cache blocks
 * (flash-decoding) for long ones, for a ragged batch of caches.
 */
class MlaAttentionTest {
    static final CpuPool POOL = new CpuPool(3);
    static final MlaConfig CFG = new MlaConfig(3, 24, 8, 20, 64, 0, 1e-6f);

    @AfterAll
    static void closePool() {
        POOL.close();
    }

    @ParameterizedTest(name = "short-context limit {0}")
    @ValueSource(ints = {2048, 0})
    void decodeMatchesReferenceOnRaggedCaches(int shortContext) {
        SplittableRandom rnd = new SplittableRandom(3);
        int heads = CFG.numHeads();
        int per = CFG.qkNopeHeadDim() + CFG.vHeadDim();
        Tensor kvB = Tensors.random("kv_b", DType.BF16, rnd, (long) heads * per, CFG.kvLoraRank());
        WeightMatrix w = WeightMatrix.of(kvB);
        WeightMatrix[] wk = new WeightMatrix[heads];
        WeightMatrix[] wv = new WeightMatrix[heads];
        for (int h = 0; h < heads; h++) {
            wk[h] = w.rows(h * per, h * per + CFG.qkNopeHeadDim());
            wv[h] = w.rows(h * per + CFG.qkNopeHeadDim(), (h + 1) * per);
        }
        int[] lengths = {1, 255, 256, 257, 700};
        List<Segment> segs = new ArrayList<>();
        for (int b = 0; b < lengths.length; b++) {
            SequenceState st = SequenceState.create(oneLayer());
            MlaCache cache = st.mla(0);
            for (int t = 0; t < lengths[b]; t++) {
                cache.append(TestData.normal(rnd, CFG.latentSize(), 1), 0);
            }
            segs.add(new Segment(st, b, 1, true));
        }
        float[] q = TestData.normal(rnd, lengths.length * heads * CFG.qkHeadDim(), 1);
        float[] o = new float[lengths.length * heads * CFG.vHeadDim()];
        MlaAttention att = new MlaAttention(CFG, POOL, new Matmuls(POOL));
        att.shortContext = shortContext;
        att.absorbed(wk, wv, segs, 0, q, o);
        for (int b = 0; b < lengths.length; b++) {
            float[] want = reference(kvB, segs.get(b).state().mla(0), q, b, lengths[b]);
            float[] got = java.util.Arrays.copyOfRange(o, b * heads * CFG.vHeadDim(), (b + 1) * heads * CFG.vHeadDim());
            assertRelRms("decode over " + lengths[b] + " tokens", want, got, 5e-6);
        }
    }

    @ParameterizedTest(name = "prefill {0} new tokens after 300")
    @ValueSource(ints = {1, 7, 300})
    void expandedPrefillMatchesReference(int count) {
        SplittableRandom rnd = new SplittableRandom(count);
        int heads = CFG.numHeads();
        Tensor kvB = Tensors.random("kv_b", DType.BF16, rnd, (long) heads * (CFG.qkNopeHeadDim() + CFG.vHeadDim()), CFG.kvLoraRank());
        int past = 300;
        SequenceState st = SequenceState.create(oneLayer());
        MlaCache cache = st.mla(0);
        for (int t = 0; t < past + count; t++) {
            cache.append(TestData.normal(rnd, CFG.latentSize(), 1), 0);
        }
        float[] q = TestData.normal(rnd, count * heads * CFG.qkHeadDim(), 1);
        float[] o = new float[count * heads * CFG.vHeadDim()];
        new MlaAttention(CFG, POOL, new Matmuls(POOL)).expanded(WeightMatrix.of(kvB), cache, q, 0, count, past, o);
        for (int t = 0; t < count; t++) {
            float[] want = reference(kvB, cache, q, t, past + t + 1);
            float[] got = java.util.Arrays.copyOfRange(o, t * heads * CFG.vHeadDim(), (t + 1) * heads * CFG.vHeadDim());
            assertRelRms("prefill query " + t, want, got, 5e-6);
        }
    }

    /** The spec's expanded attention for query row {@code row} over the first {@code visible} cached tokens. */
    static float[] reference(Tensor kvB, MlaCache cache, float[] q, int row, int visible) {
        int heads = CFG.numHeads();
        int nope = CFG.qkNopeHeadDim();
        int rope = CFG.qkRopeHeadDim();
        int vd = CFG.vHeadDim();
        int lora = CFG.kvLoraRank();
        float[] out = new float[heads * vd];
        for (int h = 0; h < heads; h++) {
            double[][] keys = new double[visible][nope + rope];
            double[][] values = new double[visible][vd];
            for (int s = 0; s < visible; s++) {
                double[] c = new double[lora];
                for (int i = 0; i < lora; i++) {
                    c[i] = cache.get(s, i);
                }
                double[] kv = ReferenceOps.matvec(kvB, c);
                for (int i = 0; i < nope; i++) {
                    keys[s][i] = kv[h * (nope + vd) + i];
                }
                for (int i = 0; i < rope; i++) {
                    keys[s][nope + i] = cache.get(s, lora + i);
                }
                for (int i = 0; i < vd; i++) {
                    values[s][i] = kv[h * (nope + vd) + nope + i];
                }
            }
            double[] qh = new double[nope + rope];
            for (int i = 0; i < nope + rope; i++) {
                qh[i] = q[(row * heads + h) * (nope + rope) + i];
            }
            double[] oh = ReferenceOps.attend(qh, keys, values, CFG.softmaxScale());
            for (int i = 0; i < vd; i++) {
                out[h * vd + i] = (float) oh[i];
            }
        }
        return out;
    }

    static KimiLinearConfig oneLayer() {
        return new KimiLinearConfig(16, 16, 1, List.of(LayerKind.MLA), List.of(MlpKind.DENSE), 16, 1e-5f, null, CFG, null, false, 0,
                List.of(), 0, 1L << 40);
    }
}
