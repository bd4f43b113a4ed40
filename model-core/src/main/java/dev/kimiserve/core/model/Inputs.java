package dev.kimiserve.core.model;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.state.SequenceState;

/** Argument checks every engine applies before touching any state (so a bad request changes nothing). */
public final class Inputs {
    private Inputs() {
    }

    public static void checkTokens(KimiLinearConfig cfg, int[] tokens) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("no input tokens");
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= cfg.vocabSize()) {
                throw new IllegalArgumentException("token id " + tokens[i] + " at position " + i
                        + " is outside the model's vocabulary [0, " + cfg.vocabSize() + ")");
            }
        }
    }

    public static void checkContext(KimiLinearConfig cfg, SequenceState state, int newTokens) {
        if (state.numLayers() != cfg.numLayers()) {
            throw new IllegalArgumentException("state has " + state.numLayers() + " layers, the model " + cfg.numLayers());
        }
        if (state.position() + newTokens > cfg.maxContext()) {
            throw new IllegalArgumentException("context of " + (state.position() + newTokens) + " tokens exceeds the model's maximum "
                    + cfg.maxContext());
        }
    }

    public static void checkDecode(KimiLinearConfig cfg, int[] tokens, SequenceState[] states, float[] logits) {
        if (tokens.length != states.length) {
            throw new IllegalArgumentException(tokens.length + " tokens for " + states.length + " sequences");
        }
        if (logits.length < (long) tokens.length * cfg.vocabSize()) {
            throw new IllegalArgumentException("logits buffer holds " + logits.length + " values, needs " + (long) tokens.length * cfg.vocabSize());
        }
        checkTokens(cfg, tokens);
        java.util.Set<SequenceState> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (SequenceState s : states) {
            if (!seen.add(s)) {
                throw new IllegalArgumentException("the same sequence state appears twice in one decode batch");
            }
            checkContext(cfg, s, 1);
        }
    }
}
