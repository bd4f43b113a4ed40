package dev.kimiserve.runtime.worker;

import dev.kimiserve.core.generate.TextAssembler;
import dev.kimiserve.core.sampling.Sampler;
import dev.kimiserve.core.sampling.SamplingParams;
import dev.kimiserve.core.sampling.TokenHistory;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.Sampling;
import dev.kimiserve.protocol.WorkerTask;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.Set;

/**
 * One choice of one request on a worker: its state, its sampler (seed + choice, advanced past the tokens already sent),
 * its penalty history and text assembler, and the tokens still to be fed back before sampling resumes.
 */
final class Sequence {
    final WorkerTask task;
    final GenerationSpec spec;
    final SequenceState state;
    final Sampler sampler;
    final TokenHistory history;
    final TextAssembler text;
    final Set<Integer> stopIds;
    /** Tokens already sampled (by us or an earlier owner), fed back one per decode step without sampling. */
    final Deque<Integer> toFeed = new ArrayDeque<>();
    /** Tokens generated so far, the next one's index. */
    int generated;
    int nextInput;
    volatile boolean cancelled;
    long startedNanos = System.nanoTime();

    Sequence(WorkerTask task, SequenceState state, KimiTokenizer tokenizer, int vocab) {
        this.task = task;
        this.spec = task.spec();
        this.state = state;
        Sampling s = spec.sampling();
        this.sampler = new Sampler(new SamplingParams(s.temperature(), s.topK(), s.topP(), s.minP(), s.repetitionPenalty(),
                s.presencePenalty(), s.frequencyPenalty(), s.seed() + task.choice()), vocab);
        SamplingParams p = sampler.params();
        this.history = p.hasPenalties() ? new TokenHistory(vocab, spec.promptTokenIds()) : null;
        this.text = tokenizer != null && spec.detokenize() ? new TextAssembler(tokenizer, spec.stopStrings()) : null;
        this.stopIds = new HashSet<>(spec.stopTokenIds());
    }

    String id() {
        return task.sequenceId();
    }

    /** Replays tokens generated before this worker took over: history, text and random stream catch up. */
    void replay(int[] tokens) {
        for (int t : tokens) {
            if (history != null) {
                history.addOutput(t);
            }
            if (text != null) {
                text.push(t);
            }
            toFeed.add(t);
        }
        sampler.advance(tokens.length);
        generated = tokens.length;
    }
}
