package dev.kimiserve.core.generate;

import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.sampling.Sampler;
import dev.kimiserve.core.sampling.TokenHistory;
import dev.kimiserve.core.state.SequenceState;
import java.util.HashSet;
import java.util.Set;
import java.util.function.IntPredicate;

/** Prefill, then decode one token at a time until a stop token, max_tokens or a full context. */
public final class Generator {
    private final Engine engine;

    public Generator(Engine engine) {
        this.engine = engine;
    }

    /** Generates from a fresh state. */
    public GenerationResult generate(GenerationRequest request, TokenListener listener) {
        return generate(request, engine.newState(), listener);
    }

    /**
     * Generates continuing {@code state} (for example a restored prefix); the prompt is what comes after it.
     *
     * @param listener sees each token as it is chosen; returning false cancels the generation
     */
    public GenerationResult generate(GenerationRequest request, SequenceState state, TokenListener listener) {
        int vocab = engine.config().vocabSize();
        int[] prompt = request.prompt();
        Sampler sampler = new Sampler(request.sampling(), vocab);
        TokenHistory history = request.sampling().hasPenalties() ? new TokenHistory(vocab, prompt) : null;
        Set<Integer> stops = new HashSet<>(request.stopTokenIds());
        if (!request.ignoreEos()) {
            stops.addAll(engine.config().eosTokenIds());
        }
        IntPredicate isStop = stops::contains;
        long t0 = System.nanoTime();
        float[] logits = engine.prefill(prompt, state, Engine.Logits.LAST);
        long t1 = System.nanoTime();
        int[] out = new int[request.maxTokens()];
        int n = 0;
        FinishReason reason = FinishReason.LENGTH;
        while (true) {
            int token = sampler.sample(logits, 0, history);
            out[n++] = token;
            if (history != null) {
                history.addOutput(token);
            }
            if (!listener.onToken(token, n - 1)) {
                reason = FinishReason.CANCELLED;
                break;
            }
            if (isStop.test(token)) {
                reason = FinishReason.STOP;
                break;
            }
            if (n == request.maxTokens() || state.position() >= engine.config().maxContext()) {
                break;
            }
            logits = engine.decode(token, state);
        }
        long t2 = System.nanoTime();
        return new GenerationResult(java.util.Arrays.copyOf(out, n), reason, prompt.length, t1 - t0, t2 - t1);
    }

    /** Receives generated tokens in order. */
    @FunctionalInterface
    public interface TokenListener {
        TokenListener NONE = (token, index) -> true;

        /** @return false to stop generating */
        boolean onToken(int token, int index);
    }
}
