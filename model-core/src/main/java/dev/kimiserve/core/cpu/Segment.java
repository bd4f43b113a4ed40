package dev.kimiserve.core.cpu;

import dev.kimiserve.core.state.SequenceState;

/**
 * The rows of one sequence inside a ragged batch: rows [start, start + count) of every activation belong to
 * {@code state}. Decode segments have one row and use the recurrent / absorbed forms; prefill segments use the
 * chunked / expanded forms.
 */
public record Segment(SequenceState state, int start, int count, boolean decode) {
    public Segment {
        if (start < 0 || count <= 0 || (decode && count != 1)) {
            throw new IllegalArgumentException("bad segment: start " + start + ", count " + count + ", decode " + decode);
        }
    }
}
