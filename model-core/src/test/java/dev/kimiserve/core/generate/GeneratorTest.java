package dev.kimiserve.core.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.sampling.SamplingParams;
import dev.kimiserve.core.testing.TinyA;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Generation on tiny-a: greedy reproduces transformers' continuation; stop ids, eos and cancellation end it. */
class GeneratorTest {
    @Test
    void greedyGenerationReproducesTransformers() {
        try (TinyA tiny = new TinyA()) {
            Generator g = new Generator(Backends.create("cpu", tiny.model.weights()));
            for (int len : TinyA.GENERATION_CASES) {
                int[] expected = tiny.ids("generate." + len + ".new_tokens");
                GenerationResult r = g.generate(new GenerationRequest(tiny.prompt(len), SamplingParams.GREEDY, expected.length, Set.of(), true),
                        Generator.TokenListener.NONE);
                assertArrayEquals(expected, r.tokens(), "greedy continuation of the " + len + "-token prompt");
                assertEquals(FinishReason.LENGTH, r.finishReason());
            }
        }
    }

    @Test
    void stopIdsEosAndCancellationEndGeneration() {
        try (TinyA tiny = new TinyA()) {
            Engine engine = Backends.create("cpu", tiny.model.weights());
            Generator g = new Generator(engine);
            int[] expected = tiny.ids("generate.7.new_tokens");
            GenerationResult stop = g.generate(new GenerationRequest(tiny.prompt(7), SamplingParams.GREEDY, 24, Set.of(expected[3]), true),
                    Generator.TokenListener.NONE);
            assertEquals(FinishReason.STOP, stop.finishReason());
            assertEquals(expected[3], stop.tokens()[stop.tokens().length - 1]);
            GenerationResult cancelled = g.generate(new GenerationRequest(tiny.prompt(7), SamplingParams.GREEDY, 24, Set.of(), true),
                    (token, index) -> index < 4);
            assertEquals(FinishReason.CANCELLED, cancelled.finishReason());
            assertEquals(5, cancelled.tokens().length);
            // eos (id 2 in tiny-a's config) ends generation unless ignore_eos
            int firstEos = -1;
            for (int i = 0; i < expected.length; i++) {
                if (engine.config().eosTokenIds().contains(expected[i])) {
                    firstEos = i;
                    break;
                }
            }
            GenerationResult withEos = g.generate(new GenerationRequest(tiny.prompt(7), SamplingParams.GREEDY, 24, Set.of(), false),
                    Generator.TokenListener.NONE);
            assertEquals(firstEos < 0 ? 24 : firstEos + 1, withEos.tokens().length);
        }
    }
}
