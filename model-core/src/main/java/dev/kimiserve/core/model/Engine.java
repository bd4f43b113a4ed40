package dev.kimiserve.core.model;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.state.SequenceState;

/**
 * A Kimi Linear forward pass on one compute backend. Engines are stateless between calls: all per-sequence state
 * lives in the {@link SequenceState} the caller passes, so one engine serves any number of sequences, and prefill can
 * continue a state (chunked prefill, a prompt that extends a cached prefix).
 */
public interface Engine extends AutoCloseable {
    KimiLinearConfig config();

    /** Backend name: "reference", "cpu", "cuda". */
    String backend();

    default SequenceState newState() {
        return SequenceState.create(config());
    }

    /**
     * Runs {@code tokens} through the model, continuing {@code state} (which advances by tokens.length).
     *
     * @return logits [tokens.length, vocab] for {@link Logits#ALL}, or [vocab] of the last token for {@link Logits#LAST}
     */
    float[] prefill(int[] tokens, SequenceState state, Logits mode, ForwardObserver observer);

    default float[] prefill(int[] tokens, SequenceState state, Logits mode) {
        return prefill(tokens, state, mode, ForwardObserver.NONE);
    }

    /**
     * One decode step for B sequences at once: token {@code tokens[b]} is appended to {@code states[b]}.
     *
     * @param logits output [B, vocab]
     */
    void decode(int[] tokens, SequenceState[] states, float[] logits);

    /** One decode step for one sequence: logits [vocab]. */
    default float[] decode(int token, SequenceState state) {
        float[] logits = new float[config().vocabSize()];
        decode(new int[]{token}, new SequenceState[]{state}, logits);
        return logits;
    }

    /**
     * The sequence of {@code state} is over: the engine drops what it keeps for it (device slots) without copying it
     * back. If the newest copy of the state lived only there, the state is gone and any later read or use of it throws
     * {@link IllegalStateException}; a state whose host copy is current stays usable. Optional: an engine also frees
     * what garbage-collected states held, and evicts (copying back) when it runs out of room.
     */
    default void release(SequenceState state) {
    }

    /** Counters for benchmarks and metrics (expert loads, tokens); engines that keep none return fresh zeros. */
    default EngineCounters counters() {
        return new EngineCounters();
    }

    /** Which prefill logits to compute. */
    enum Logits {
        /** Every position: [T, vocab]. */
        ALL,
        /** Only the last position: [vocab] (what generation needs). */
        LAST
    }

    @Override
    default void close() {
    }
}
