package dev.kimiserve.cuda;

import static dev.kimiserve.core.testing.Assertions2.assertClose;
import static dev.kimiserve.core.testing.Assertions2.assertRelRms;
import static dev.kimiserve.core.testing.Assertions2.maxAbsDiff;
import static dev.kimiserve.core.testing.Assertions2.relRms;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.cpu.CpuEngine;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.sampling.Sampler;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.testing.TestModels;
import dev.kimiserve.core.testing.TinyA;
import dev.kimiserve.core.tools.RandomCheckpoint;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole cuda backend: the tiny-a golden outputs of transformers (tolerance 1e-3: bf16 weights, fp32 accumulation),
 * and the cpu backend on random models, one with awkward shapes (general kernels: head dims 40/24/20, q LoRA, grouped
 * routing) and one with 128-wide KDA heads (the tuned kda_decode / kda_prefill kernels); batched decode equal to
 * decoding alone bit for bit; state read back on the host mid-sequence, evicted and re-uploaded without a change.
 */
class CudaEngineTest extends GpuTest {
    static final double GOLDEN_ATOL = 1e-3;
    /** fp32 activations everywhere (no cuBLASLt) and a small prefill chunk, so that prompts go in several pieces. */
    static final CudaEngine.Options EXACT = new CudaEngine.Options(8, 4096, 64, 0, 0, false, true);
    static final CudaEngine.Options DEFAULT = new CudaEngine.Options(8, 4096, 1024, 64, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, false, true);
    static final CudaEngine.Options BF16 = new CudaEngine.Options(8, 4096, 1024, 64, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, true, true);
    /** EXACT with every projection and expert GEMV on the tensor-core kernels (from one row). */
    static final CudaEngine.Options TENSOR = new CudaEngine.Options(8, 4096, 64, 0, 1, false, true);

    @TempDir
    Path dir;

    @ParameterizedTest(name = "tiny-a prefill and teacher-forced decode, cuBLASLt from {0} rows, graphs {1}, tensor-core GEMV from {2} rows")
    @org.junit.jupiter.params.provider.CsvSource({"64, true, 4", "0, false, 0", "64, false, 4", "0, true, 0", "0, true, 1"})
    void tinyAMatchesTransformers(int cublasFromRows, boolean graphs, int tcFromRows) {
        try (TinyA tiny = new TinyA();
             CudaEngine cuda = new CudaEngine(tiny.model.weights(), device,
                     new CudaEngine.Options(8, 4096, 1024, cublasFromRows, tcFromRows, false, graphs))) {
            int vocab = tiny.model.config().vocabSize();
            int layers = tiny.model.config().numLayers();
            for (int length : TinyA.PREFILL_CASES) {
                float[][] hidden = new float[layers + 1][];
                float[] logits = cuda.prefill(tiny.prompt(length), cuda.newState(), Engine.Logits.ALL, new dev.kimiserve.core.model.ForwardObserver() {
                    @Override
                    public void hidden(int index, float[] values, int rows, int dim) {
                        hidden[index] = values;
                    }

                    @Override
                    public void finalNorm(float[] values, int rows, int dim) {
                        hidden[layers] = values;                         // transformers records the final-norm output last
                    }
                });
                for (int i = 0; i <= layers; i++) {
                    assertClose("prefill." + length + ".hidden." + i, tiny.floats("prefill." + length + ".hidden." + i), hidden[i], GOLDEN_ATOL);
                }
                float[] expected = tiny.floats("prefill." + length + ".logits");
                System.out.printf("tiny-a prefill L=%d cublasFromRows=%d: max |diff| %.2e%n", length, cublasFromRows, maxAbsDiff(expected, logits));
                assertClose("prefill." + length + ".logits", expected, logits, GOLDEN_ATOL);
            }
            for (int length : TinyA.GENERATION_CASES) {
                String p = "generate." + length + ".";
                int[] newTokens = tiny.ids(p + "new_tokens");
                float[] stepLogits = tiny.floats(p + "step_logits");
                SequenceState state = cuda.newState();
                float[] logits = cuda.prefill(tiny.prompt(length), state, Engine.Logits.LAST);
                double worst = 0;
                for (int step = 0; step < newTokens.length; step++) {
                    float[] expected = Arrays.copyOfRange(stepLogits, step * vocab, (step + 1) * vocab);
                    worst = Math.max(worst, maxAbsDiff(expected, logits));
                    assertClose(p + "step_logits[" + step + "]", expected, logits, GOLDEN_ATOL);
                    if (margin(expected) > 2 * GOLDEN_ATOL) {
                        assertEquals(newTokens[step], Sampler.argmax(logits), "greedy token at step " + step);
                    }
                    if (step + 1 < newTokens.length) {
                        logits = cuda.decode(newTokens[step], state);
                    }
                }
                System.out.printf("tiny-a decode after L=%d: max |diff| %.2e over %d steps%n", length, worst, newTokens.length);
            }
        }
    }

    private static double margin(float[] logits) {
        float first = Float.NEGATIVE_INFINITY, second = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return first - second;
    }

    /** KDA heads of 128 (the tuned kernels' size), MLA without q LoRA as in the 48B model. */
    static KimiLinearConfig wideHeads() {
        return new KimiLinearConfig(500, 256, 4,
                List.of(LayerKind.KDA, LayerKind.KDA, LayerKind.MLA, LayerKind.KDA),
                List.of(MlpKind.DENSE, MlpKind.MOE, MlpKind.MOE, MlpKind.MOE), 384, 1e-5f,
                new KdaConfig(2, 128, 4), new MlaConfig(4, 32, 16, 32, 64, 0, 1e-6f),
                new MoeConfig(16, 4, 64, 1, 1, 1, true, 2.446f, false), false, 1, List.of(3), 0, 1_048_576L);
    }

    @ParameterizedTest(name = "{0}: prefill and batched decode match the cpu backend")
    @ValueSource(strings = {"awkward", "wideHeads"})
    void matchesCpuBackend(String shape) throws Exception {
        KimiLinearConfig cfg = shape.equals("awkward") ? TestModels.awkward() : wideHeads();
        RandomCheckpoint.write(cfg, dir, 11, Long.MAX_VALUE, null);
        try (LoadedModel m = LoadedModel.open(dir); CpuEngine cpu = new CpuEngine(m.weights(), 2, 64);
             CudaEngine cuda = new CudaEngine(m.weights(), device, EXACT)) {
            int vocab = cfg.vocabSize();
            SplittableRandom rnd = new SplittableRandom(5);
            int[] lengths = {1, 63, 64, 65, 1000};
            SequenceState[] cpuStates = new SequenceState[lengths.length];
            SequenceState[] cudaStates = new SequenceState[lengths.length];
            for (int b = 0; b < lengths.length; b++) {
                int[] prompt = rnd.ints(lengths[b], 0, vocab).toArray();
                cpuStates[b] = cpu.newState();
                cudaStates[b] = cuda.newState();
                float[] c = cpu.prefill(prompt, cpuStates[b], Engine.Logits.ALL);
                float[] g = cuda.prefill(prompt, cudaStates[b], Engine.Logits.ALL);
                System.out.printf("%s prefill %d: rel rms %.2e%n", shape, lengths[b], relRms(c, g));
                assertRelRms(shape + " prefill logits, " + lengths[b] + " tokens", c, g, 1e-4);
            }
            for (int step = 0; step < 4; step++) {
                int[] tokens = rnd.ints(lengths.length, 0, vocab).toArray();
                SequenceState[] alone = Arrays.stream(cudaStates).map(SequenceState::copy).toArray(SequenceState[]::new);
                float[] batched = new float[lengths.length * vocab];
                float[] reference = new float[lengths.length * vocab];
                cuda.decode(tokens, cudaStates, batched);
                cpu.decode(tokens, cpuStates, reference);
                for (int b = 0; b < lengths.length; b++) {
                    float[] one = cuda.decode(tokens[b], alone[b]);
                    float[] row = Arrays.copyOfRange(batched, b * vocab, (b + 1) * vocab);
                    assertArrayEquals(one, row, "batched decode = decoding alone, step " + step + " sequence " + b);
                    assertRelRms(shape + " decode step " + step + " of sequence " + b, Arrays.copyOfRange(reference, b * vocab, (b + 1) * vocab),
                            row, 1e-4);
                }
            }
            for (int b = 0; b < lengths.length; b++) {                  // the host copy pulled from the device = the cpu's state
                assertRelRms("recurrent state of sequence " + b, cpuStates[b].kda(0).recurrent, cudaStates[b].kda(0).recurrent, 1e-4);
                assertRelRms("conv windows of sequence " + b, cpuStates[b].kda(0).convK, cudaStates[b].kda(0).convK, 1e-4);
                int mlaLayer = cfg.layerKinds().indexOf(LayerKind.MLA);
                assertEquals(cpuStates[b].mla(mlaLayer).length(), cudaStates[b].mla(mlaLayer).length());
            }
            int[] prompt = rnd.ints(300, 0, vocab).toArray();
            float[] c = cpu.prefill(prompt, cpu.newState(), Engine.Logits.ALL);
            try (CudaEngine tensor = new CudaEngine(m.weights(), device, TENSOR)) {   // tensor cores from one row, 64-row pieces
                SequenceState cpuState = cpu.newState();
                SequenceState[] states = new SequenceState[4];
                float[] g = null;
                for (int b = 0; b < states.length; b++) {
                    states[b] = tensor.newState();
                    float[] logits = tensor.prefill(Arrays.copyOf(prompt, prompt.length - 50 * b), states[b], Engine.Logits.ALL);
                    g = b == 0 ? logits : g;
                }
                assertRelRms(shape + " prefill on the tensor-core GEMVs", cpu.prefill(prompt, cpuState, Engine.Logits.ALL), g, 1e-4);
                for (int step = 0; step < 3; step++) {
                    int[] tokens = rnd.ints(states.length, 0, vocab).toArray();
                    SequenceState[] alone = Arrays.stream(states).map(SequenceState::copy).toArray(SequenceState[]::new);
                    float[] batched = new float[states.length * vocab];
                    tensor.decode(tokens, states, batched);
                    for (int b = 0; b < states.length; b++) {               // an MMA column does not see the others
                        assertArrayEquals(tensor.decode(tokens[b], alone[b]), Arrays.copyOfRange(batched, b * vocab, (b + 1) * vocab),
                                "tensor cores: batched decode = decoding alone, step " + step + " sequence " + b);
                    }
                    assertRelRms(shape + " decode on the tensor-core GEMVs, step " + step, cpu.decode(tokens[0], cpuState),
                            Arrays.copyOf(batched, vocab), 1e-4);
                }
                System.out.printf("%s prefill 300 on the tensor-core GEMVs: rel rms %.2e%n", shape, relRms(c, g));
            }
            try (CudaEngine defaults = new CudaEngine(m.weights(), device, DEFAULT);      // cuBLASLt from 64 rows, split activations
                 CudaEngine bf16 = new CudaEngine(m.weights(), device, BF16)) {           // cuBLASLt from 64 rows, bf16 activations
                float[] g = defaults.prefill(prompt, defaults.newState(), Engine.Logits.ALL);
                float[] h = bf16.prefill(prompt, bf16.newState(), Engine.Logits.ALL);
                System.out.printf("%s prefill 300 with cuBLASLt: rel rms %.2e split, %.2e bf16 activations%n", shape, relRms(c, g), relRms(c, h));
                assertRelRms(shape + " prefill with cuBLASLt, split activations", c, g, 1e-4);
                assertRelRms(shape + " prefill with cuBLASLt, bf16 activations", c, h, 0.15); // routing flips on near-ties
            }
        }
    }

    /** Overlapped launches only move when a kernel starts; every kernel still waits for its inputs, so nothing changes. */
    @ParameterizedTest(name = "{0}: overlapped launches give the same logits, bit for bit")
    @ValueSource(strings = {"awkward", "wideHeads"})
    void overlappedLaunchesChangeNothing(String shape) throws Exception {
        KimiLinearConfig cfg = shape.equals("awkward") ? TestModels.awkward() : wideHeads();
        RandomCheckpoint.write(cfg, dir, 17, Long.MAX_VALUE, null);
        CudaEngine.Options plain = new CudaEngine.Options(8, 4096, 64, 64, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, false, true, false);
        CudaEngine.Options overlapped = new CudaEngine.Options(8, 4096, 64, 64, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, false, true, true);
        try (LoadedModel m = LoadedModel.open(dir); CudaEngine a = new CudaEngine(m.weights(), device, plain);
             CudaEngine b = new CudaEngine(m.weights(), device, overlapped)) {
            System.out.println("overlapped launches on this card: " + KernelLaunch.overlapSupported(device));
            assertSameLogits(a, b, new int[]{1, 65, 200, 7, 130}, 23, 4);
        }
    }

    /**
     * Prompts of these lengths prefilled on both engines, then {@code steps} decode steps (batched, and the first
     * sequence alone): the same logits bit for bit.
     */
    private static void assertSameLogits(Engine a, Engine b, int[] lengths, long seed, int steps) {
        int vocab = a.config().vocabSize();
        SplittableRandom rnd = new SplittableRandom(seed);
        SequenceState[] sa = new SequenceState[lengths.length];
        SequenceState[] sb = new SequenceState[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            int[] prompt = rnd.ints(lengths[i], 0, vocab).toArray();
            sa[i] = a.newState();
            sb[i] = b.newState();
            assertArrayEquals(a.prefill(prompt, sa[i], Engine.Logits.ALL), b.prefill(prompt, sb[i], Engine.Logits.ALL), "prefill " + i);
        }
        for (int step = 0; step < steps; step++) {
            int[] tokens = rnd.ints(lengths.length, 0, vocab).toArray();
            float[] la = new float[lengths.length * vocab];
            float[] lb = new float[lengths.length * vocab];
            a.decode(tokens, sa, la);
            b.decode(tokens, sb, lb);
            assertArrayEquals(la, lb, "batched decode, step " + step);
            assertArrayEquals(a.decode(tokens[0], sa[0]), b.decode(tokens[0], sb[0]), "decode of one sequence, step " + step);
        }
    }

    /** kimi.cuda.moe-columns only regroups the expert GEMVs' columns into blocks; a column's sums stay the same. */
    @Test
    void expertColumnBlocksChangeNothing() throws Exception {
        RandomCheckpoint.write(wideHeads(), dir, 29, Long.MAX_VALUE, null);
        CudaEngine.Options fp32 = new CudaEngine.Options(8, 4096, 64, 0, 0, false, true);       // the fp32 expert kernels at every size
        try (LoadedModel m = LoadedModel.open(dir); CudaEngine a = new CudaEngine(m.weights(), device, fp32)) {
            System.setProperty("kimi.cuda.moe-columns", "16");
            CudaEngine b;
            try {
                b = new CudaEngine(m.weights(), device, fp32);
            } finally {
                System.clearProperty("kimi.cuda.moe-columns");
            }
            try (b) {
                assertSameLogits(a, b, new int[]{20, 70, 120}, 31, 3);
            }
        }
    }

    @Test
    void statesSurviveHostReadsAndEviction() throws Exception {
        RandomCheckpoint.write(TestModels.awkward(), dir, 3, Long.MAX_VALUE, null);
        try (LoadedModel m = LoadedModel.open(dir);
             CudaEngine roomy = new CudaEngine(m.weights(), device, EXACT);
             CudaEngine tight = new CudaEngine(m.weights(), device, new CudaEngine.Options(2, 4096, 64, 0, 0, false, false))) {
            int vocab = m.config().vocabSize();
            SplittableRandom rnd = new SplittableRandom(9);
            int n = 5;
            SequenceState[] a = new SequenceState[n];
            SequenceState[] b = new SequenceState[n];
            for (int i = 0; i < n; i++) {
                int[] prompt = rnd.ints(10 + 37 * i, 0, vocab).toArray();
                a[i] = roomy.newState();
                b[i] = tight.newState();
                assertArrayEquals(roomy.prefill(prompt, a[i], Engine.Logits.LAST), tight.prefill(prompt, b[i], Engine.Logits.LAST));
            }
            for (int step = 0; step < 6; step++) {
                int i = step % n;
                int token = rnd.nextInt(vocab);
                if (step == 2) {
                    a[i].kda(0);                                             // a host read pulls the state; the next call re-uploads it
                }
                assertArrayEquals(roomy.decode(token, a[i]), tight.decode(token, b[i]), "step " + step + " (sequence " + i + " evicted and back)");
            }
            SequenceState before = a[0].copy();
            assertThrows(IllegalArgumentException.class, () -> roomy.decode(vocab, a[0]));
            assertEquals(before.position(), a[0].position());
            assertArrayEquals(before.kda(0).recurrent, a[0].kda(0).recurrent, "a rejected token changes nothing");
            roomy.release(a[1]);                                              // released while on the device: gone
            assertThrows(IllegalStateException.class, () -> a[1].kda(0));
            assertThrows(IllegalStateException.class, () -> roomy.decode(7, a[1]));
            SequenceState host = a[2].copy();                                 // a state whose host copy is current stays usable
            roomy.release(host);
            assertArrayEquals(tight.decode(7, b[2]), roomy.decode(7, host));
            for (int round = 0; round < 40; round++) {                        // forgotten pairs give their 2 slots back,
                SequenceState[] pair = {tight.newState(), tight.newState()};   // also between the GC and the reference queue
                tight.prefill(new int[]{1, 2, 3}, pair[0], Engine.Logits.LAST);
                tight.prefill(new int[]{4, 5}, pair[1], Engine.Logits.LAST);
                tight.decode(new int[]{6, 7}, pair, new float[2 * vocab]);
                System.gc();
            }
        }
    }
}
