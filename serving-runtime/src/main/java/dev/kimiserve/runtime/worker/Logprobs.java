package dev.kimiserve.runtime.worker;

import dev.kimiserve.protocol.TokenEvent;
import java.util.ArrayList;
import java.util.List;

/** Log-probabilities of the model's raw distribution (before penalties and temperature), as vLLM returns them. */
final class Logprobs {
    private Logprobs() {
    }

    /** log Z = log sum exp(logits[off .. off+vocab)). */
    static double logNormalizer(float[] logits, int off, int vocab) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return max + Math.log(sum);
    }

    /** The k most likely tokens with their log-probabilities, best first (ties: lower id first). */
    static List<TokenEvent.TopLogprob> top(float[] logits, int off, int vocab, int k, double logZ) {
        int[] ids = new int[k];
        float[] vals = new float[k];
        int n = 0;
        for (int i = 0; i < vocab; i++) {
            float v = logits[off + i];
            if (n < k || v > vals[n - 1]) {
                int pos = n < k ? n++ : n - 1;
                while (pos > 0 && vals[pos - 1] < v) {
                    vals[pos] = vals[pos - 1];
                    ids[pos] = ids[pos - 1];
                    pos--;
                }
                vals[pos] = v;
                ids[pos] = i;
            }
        }
        List<TokenEvent.TopLogprob> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(new TokenEvent.TopLogprob(ids[i], null, vals[i] - logZ));
        }
        return out;
    }
}
