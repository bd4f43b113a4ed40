package dev.kimiserve.core.model;

import static dev.kimiserve.core.testing.Assertions2.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kimiserve.core.sampling.Sampler;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.testing.TinyA;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every backend against transformers' own KimiLinear on the tiny-a fixture: prefill logits, per-layer hidden states,
 * teacher-forced decode logits, and the greedy tokens (within 1e-4 absolute; the oracle ran in fp32).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GoldenTinyATest {
    static final double ATOL = 1e-4;
    TinyA tiny;

    @BeforeAll
    void open() {
        tiny = new TinyA();
    }

    @AfterAll
    void close() {
        tiny.close();
    }

    Stream<Arguments> prefillCases() {
        return Stream.of("cpu", "reference").flatMap(b -> Arrays.stream(TinyA.PREFILL_CASES).mapToObj(l -> Arguments.of(b, l)));
    }

    Stream<Arguments> generationCases() {
        return Stream.of("cpu", "reference").flatMap(b -> Arrays.stream(TinyA.GENERATION_CASES).mapToObj(l -> Arguments.of(b, l)));
    }

    @ParameterizedTest(name = "{0} prefill L={1}")
    @MethodSource("prefillCases")
    void prefillLogitsAndHiddenStatesMatchTransformers(String backend, int length) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int layers = engine.config().numLayers();
        float[][] hidden = new float[layers + 1][];
        float[] logits = engine.prefill(tiny.prompt(length), engine.newState(), Engine.Logits.ALL, new ForwardObserver() {
            @Override
            public void hidden(int index, float[] values, int rows, int dim) {
                hidden[index] = Arrays.copyOf(values, rows * dim);
            }

            @Override
            public void finalNorm(float[] values, int rows, int dim) {
                hidden[layers] = Arrays.copyOf(values, rows * dim); // transformers records the final-norm output last, not the last layer's
            }
        });
        String p = "prefill." + length + ".";
        for (int i = 0; i <= layers; i++) {
            assertClose(backend + " " + p + "hidden." + i, tiny.floats(p + "hidden." + i), hidden[i], ATOL);
        }
        assertClose(backend + " " + p + "logits", tiny.floats(p + "logits"), logits, ATOL);
    }

    @ParameterizedTest(name = "{0} teacher-forced decode after L={1}")
    @MethodSource("generationCases")
    void teacherForcedDecodeMatchesStepLogitsAndGreedyTokens(String backend, int length) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int vocab = engine.config().vocabSize();
        String p = "generate." + length + ".";
        int[] newTokens = tiny.ids(p + "new_tokens");
        float[] stepLogits = tiny.floats(p + "step_logits");
        SequenceState state = engine.newState();
        float[] logits = engine.prefill(tiny.prompt(length), state, Engine.Logits.LAST);
        for (int step = 0; step < newTokens.length; step++) {
            float[] expected = Arrays.copyOfRange(stepLogits, step * vocab, (step + 1) * vocab);
            assertClose(backend + " " + p + "step_logits[" + step + "]", expected, logits, ATOL);
            assertEquals(newTokens[step], Sampler.argmax(logits), backend + " greedy token at step " + step);
            if (step + 1 < newTokens.length) {
                logits = engine.decode(newTokens[step], state);
            }
        }
    }

    @ParameterizedTest(name = "{0} no-cache recomputation after L={1}")
    @MethodSource("generationCases")
    void prefillOverPromptAndContinuationMatchesFullLogits(String backend, int length) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int vocab = engine.config().vocabSize();
        String p = "generate." + length + ".";
        int[] prompt = tiny.prompt(length);
        int[] newTokens = tiny.ids(p + "new_tokens");
        int[] all = new int[length + newTokens.length - 1];
        System.arraycopy(prompt, 0, all, 0, length);
        System.arraycopy(newTokens, 0, all, length, newTokens.length - 1);
        float[] logits = engine.prefill(all, engine.newState(), Engine.Logits.ALL);
        float[] tail = Arrays.copyOfRange(logits, (length - 1) * vocab, all.length * vocab);
        assertClose(backend + " " + p + "full_logits", tiny.floats(p + "full_logits"), tail, ATOL);
    }
}
