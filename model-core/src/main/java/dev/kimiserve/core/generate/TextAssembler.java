package dev.kimiserve.core.generate;

import dev.kimiserve.core.tokenizer.KimiTokenizer;
import dev.kimiserve.core.tokenizer.StreamingDetokenizer;
import java.util.List;

/**
 * Turns generated token ids into the text a client may see, token by token: UTF-8 sequences are never split
 * ({@link StreamingDetokenizer}) and text that could still become the start of a stop string is held back until it cannot.
 * When a stop string appears the text is cut right before it and {@link #stopped()} turns true; the stop string itself is
 * never emitted (OpenAI semantics). Deterministic: the same ids give the same deltas, so a re-run produces identical events.
 */
public final class TextAssembler {
    private final StreamingDetokenizer detokenizer;
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private boolean stopped;

    public TextAssembler(KimiTokenizer tokenizer, List<String> stopStrings) {
        this.detokenizer = tokenizer.streamingDetokenizer();
        this.stops = stopStrings == null ? List.of() : stopStrings.stream().filter(s -> !s.isEmpty()).toList();
    }

    /** Adds a token; returns the text now safe to emit (possibly empty). After a stop string matched, returns "". */
    public String push(int tokenId) {
        if (stopped) {
            return "";
        }
        held.append(detokenizer.push(tokenId));
        return release(false);
    }

    /** End of generation: everything still held (incomplete bytes decode to U+FFFD), unless a stop string matched. */
    public String finish() {
        if (stopped) {
            return "";
        }
        held.append(detokenizer.flush());
        return release(true);
    }

    public boolean stopped() {
        return stopped;
    }

    private String release(boolean all) {
        int cut = -1;
        for (String s : stops) {
            int at = held.indexOf(s);
            if (at >= 0 && (cut < 0 || at < cut)) {
                cut = at;
            }
        }
        if (cut >= 0) {
            stopped = true;
            String out = held.substring(0, cut);
            held.setLength(0);
            return out;
        }
        int keep = all ? 0 : longestStopPrefixSuffix();
        String out = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return out;
    }

    /** Length of the longest suffix of the held text that is a proper prefix of some stop string. */
    private int longestStopPrefixSuffix() {
        int best = 0;
        for (String s : stops) {
            for (int len = Math.min(s.length() - 1, held.length()); len > best; len--) {
                if (held.toString().regionMatches(held.length() - len, s, 0, len)) {
                    best = len;
                    break;
                }
            }
        }
        return best;
    }
}
