package dev.kimiserve.core.cpu;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;

import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.reference.ReferenceEngine;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.testing.TestModels;
import dev.kimiserve.core.tools.RandomCheckpoint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole cpu path against the reference engine on a random model with awkward shapes: head dims that are not
 * multiples of the vector block (40, 24, 20), q_lora, grouped routing, a prefill longer than the engine's prefill
 * chunk, and a ragged batched decode of sequences at different lengths.
 */
class CpuVsReferenceModelTest {
    @TempDir
    Path dir;

    @Test
    void prefillAndRaggedBatchedDecodeMatchReference() throws IOException {
        RandomCheckpoint.write(TestModels.awkward(), dir, 11, Long.MAX_VALUE, null);
        try (LoadedModel m = LoadedModel.open(dir); CpuEngine cpu = new CpuEngine(m.weights(), 3, 64)) {
            ReferenceEngine ref = new ReferenceEngine(m.weights());
            int vocab = m.config().vocabSize();
            SplittableRandom rnd = new SplittableRandom(5);
            int[] lengths = {1, 9, 64, 150};
            SequenceState[] cpuStates = new SequenceState[lengths.length];
            SequenceState[] refStates = new SequenceState[lengths.length];
            for (int b = 0; b < lengths.length; b++) {
                int[] prompt = rnd.ints(lengths[b], 0, vocab).toArray();
                cpuStates[b] = cpu.newState();
                refStates[b] = ref.newState();
                float[] c = cpu.prefill(prompt, cpuStates[b], Engine.Logits.ALL);
                float[] r = ref.prefill(prompt, refStates[b], Engine.Logits.ALL);
                assertRelRms("prefill logits, " + lengths[b] + " tokens", r, c, 2e-5);
            }
            for (int step = 0; step < 3; step++) {
                int[] tokens = rnd.ints(lengths.length, 0, vocab).toArray();
                float[] batched = new float[lengths.length * vocab];
                cpu.decode(tokens, cpuStates, batched);
                for (int b = 0; b < lengths.length; b++) {
                    float[] r = ref.decode(tokens[b], refStates[b]);
                    assertRelRms("decode step " + step + " of sequence " + b, r, Arrays.copyOfRange(batched, b * vocab, (b + 1) * vocab), 2e-5);
                }
            }
        }
    }
}
