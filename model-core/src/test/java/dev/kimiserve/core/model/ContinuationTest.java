package dev.kimiserve.core.model;

import static dev.kimiserve.core.testing.Assertions2.assertRelRms;

import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.state.StateCodec;
import dev.kimiserve.core.testing.TinyA;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The cache paths against the no-cache path on tiny-a: prefill in two parts equals prefill in one (logits and the
 * whole state), decode steps after a prefill equal one longer prefill, and a batched decode of ragged sequences equals
 * decoding each alone.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ContinuationTest {
    static final double TOL = 2e-5;
    TinyA tiny;

    @BeforeAll
    void open() {
        tiny = new TinyA();
    }

    @AfterAll
    void close() {
        tiny.close();
    }

    Stream<Arguments> splits() {
        return Stream.of("cpu", "reference").flatMap(b -> Stream.of(1, 63, 64, 65, 100, 149).map(s -> Arguments.of(b, s)));
    }

    @ParameterizedTest(name = "{0} prefill 150 as {1} + rest")
    @MethodSource("splits")
    void prefillInTwoPartsEqualsPrefillInOne(String backend, int split) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int[] prompt = tiny.prompt(150);
        SequenceState one = engine.newState();
        float[] logitsOne = engine.prefill(prompt, one, Engine.Logits.ALL);
        SequenceState two = engine.newState();
        float[] first = engine.prefill(Arrays.copyOfRange(prompt, 0, split), two, Engine.Logits.ALL);
        float[] second = engine.prefill(Arrays.copyOfRange(prompt, split, prompt.length), two, Engine.Logits.ALL);
        float[] joined = new float[logitsOne.length];
        System.arraycopy(first, 0, joined, 0, first.length);
        System.arraycopy(second, 0, joined, first.length, second.length);
        assertRelRms(backend + " logits", logitsOne, joined, TOL);
        assertStatesClose(backend, one, two);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void decodeStepsEqualOneLongerPrefill(String backend) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int vocab = engine.config().vocabSize();
        int[] prompt = tiny.prompt(150);
        int cut = 120;
        SequenceState state = engine.newState();
        engine.prefill(Arrays.copyOfRange(prompt, 0, cut), state, Engine.Logits.LAST);
        float[] full = engine.prefill(prompt, engine.newState(), Engine.Logits.ALL);
        for (int t = cut; t < prompt.length; t++) {
            float[] step = engine.decode(prompt[t], state);
            assertRelRms(backend + " decode at " + t, Arrays.copyOfRange(full, t * vocab, (t + 1) * vocab), step, TOL);
        }
    }

    Stream<String> backends() {
        return Stream.of("cpu", "reference");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchedDecodeOfRaggedSequencesEqualsDecodingEachAlone(String backend) {
        Engine engine = Backends.create(backend, tiny.model.weights());
        int vocab = engine.config().vocabSize();
        int[] prompt = tiny.prompt(150);
        int[] lengths = {1, 7, 64, 65, 150};
        SequenceState[] batched = new SequenceState[lengths.length];
        SequenceState[] alone = new SequenceState[lengths.length];
        for (int b = 0; b < lengths.length; b++) {
            batched[b] = engine.newState();
            engine.prefill(Arrays.copyOfRange(prompt, 0, lengths[b]), batched[b], Engine.Logits.LAST);
            alone[b] = batched[b].copy();
        }
        for (int step = 0; step < 3; step++) {
            int[] tokens = new int[lengths.length];
            for (int b = 0; b < tokens.length; b++) {
                tokens[b] = prompt[(7 * b + 11 * step) % prompt.length];
            }
            float[] logits = new float[tokens.length * vocab];
            engine.decode(tokens, batched, logits);
            for (int b = 0; b < tokens.length; b++) {
                float[] single = engine.decode(tokens[b], alone[b]);
                float[] inBatch = Arrays.copyOfRange(logits, b * vocab, (b + 1) * vocab);
                if (backend.equals("cpu")) {
                    // exact: a sequence re-run in another batch after a worker failure must reproduce its tokens
                    org.junit.jupiter.api.Assertions.assertArrayEquals(single, inBatch, "cpu sequence " + b + " step " + step);
                } else {
                    assertRelRms(backend + " sequence " + b + " step " + step, single, inBatch, 1e-6);
                }
            }
        }
    }

    @Test
    void referenceAndCpuLeaveTheSameState() {
        int[] prompt = tiny.prompt(150);
        SequenceState ref = Backends.create("reference", tiny.model.weights()).newState();
        Backends.create("reference", tiny.model.weights()).prefill(prompt, ref, Engine.Logits.LAST);
        SequenceState cpu = Backends.create("cpu", tiny.model.weights()).newState();
        Backends.create("cpu", tiny.model.weights()).prefill(prompt, cpu, Engine.Logits.LAST);
        assertStatesClose("reference vs cpu", ref, cpu);
    }

    /** Compares two states through their serialised form (every conv window, recurrent state and latent). */
    static void assertStatesClose(String what, SequenceState a, SequenceState b) {
        org.junit.jupiter.api.Assertions.assertEquals(a.position(), b.position(), what + " position");
        for (int l = 0; l < a.numLayers(); l++) {
            if (a.layer(l) instanceof dev.kimiserve.core.state.KdaState ka) {
                var kb = b.kda(l);
                assertRelRms(what + " layer " + l + " S", ka.recurrent, kb.recurrent, TOL);
                assertRelRms(what + " layer " + l + " conv q", ka.convQ, kb.convQ, TOL);
                assertRelRms(what + " layer " + l + " conv k", ka.convK, kb.convK, TOL);
                assertRelRms(what + " layer " + l + " conv v", ka.convV, kb.convV, TOL);
            } else {
                var ma = a.mla(l);
                var mb = b.mla(l);
                org.junit.jupiter.api.Assertions.assertEquals(ma.length(), mb.length(), what + " layer " + l + " cached tokens");
                float[] la = new float[ma.length() * ma.latentSize()];
                float[] lb = new float[la.length];
                for (int t = 0; t < ma.length(); t++) {
                    ma.read(t, la, t * ma.latentSize());
                    mb.read(t, lb, t * mb.latentSize());
                }
                assertRelRms(what + " layer " + l + " latents", la, lb, TOL);
            }
        }
        org.junit.jupiter.api.Assertions.assertEquals(StateCodec.encodedSize(a), StateCodec.encodedSize(b), what + " encoded size");
    }
}
