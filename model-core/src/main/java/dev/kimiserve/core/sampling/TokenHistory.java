package dev.kimiserve.core.sampling;

import java.util.BitSet;

/** What the penalties need to know about one sequence: which tokens the prompt holds and how often each was generated. */
public final class TokenHistory {
    private final BitSet prompt = new BitSet();
    private final int[] outputCounts;
    private final BitSet output = new BitSet();

    public TokenHistory(int vocabSize, int[] promptTokens) {
        this.outputCounts = new int[vocabSize];
        for (int t : promptTokens) {
            prompt.set(t);
        }
    }

    public void addOutput(int token) {
        outputCounts[token]++;
        output.set(token);
    }

    public int outputCount(int token) {
        return outputCounts[token];
    }

    /** Tokens seen in prompt or output (for the repetition penalty). */
    public BitSet seen() {
        BitSet s = (BitSet) prompt.clone();
        s.or(output);
        return s;
    }

    public BitSet generated() {
        return output;
    }
}
