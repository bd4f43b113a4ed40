package dev.kimiserve.core.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Turns a stream of token ids into text piece by piece, never splitting a UTF-8 sequence: bytes of a character that is
 * not complete yet are held back until the tokens that complete it arrive. The concatenation of everything returned
 * (including {@link #flush()}) equals decoding all ids at once. One instance per sequence; not thread-safe.
 */
public final class StreamingDetokenizer {
    private final KimiTokenizer tokenizer;
    private byte[] pending = new byte[16];
    private int pendingLength;

    StreamingDetokenizer(KimiTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Adds one token; returns the text that became complete (possibly empty). */
    public String push(int id) {
        byte[] b = tokenizer.tokenBytes(id);
        if (pending.length < pendingLength + b.length) {
            pending = Arrays.copyOf(pending, Math.max(pending.length * 2, pendingLength + b.length));
        }
        System.arraycopy(b, 0, pending, pendingLength, b.length);
        pendingLength += b.length;
        int complete = completePrefix(pending, pendingLength);
        if (complete == 0) {
            return "";
        }
        String text = new String(pending, 0, complete, StandardCharsets.UTF_8);
        System.arraycopy(pending, complete, pending, 0, pendingLength - complete);
        pendingLength -= complete;
        return text;
    }

    /** Whatever is still held back, decoded with replacement characters (end of the stream). */
    public String flush() {
        String text = new String(pending, 0, pendingLength, StandardCharsets.UTF_8);
        pendingLength = 0;
        return text;
    }

    /** Bytes held back waiting for the rest of a character. */
    public int pendingBytes() {
        return pendingLength;
    }

    /**
     * Length of the longest prefix that ends on a character boundary: everything except a trailing sequence that starts
     * with a valid lead byte, is followed only by continuation bytes, and is still shorter than the lead announces.
     */
    static int completePrefix(byte[] b, int length) {
        int start = length;
        for (int back = 1; back <= 3 && length - back >= 0; back++) {
            int v = b[length - back] & 0xFF;
            if ((v & 0xC0) == 0x80) {
                continue;                           // a continuation byte: look further back for the lead
            }
            int need = (v & 0xE0) == 0xC0 ? 2 : (v & 0xF0) == 0xE0 ? 3 : (v & 0xF8) == 0xF0 ? 4 : 1;
            if (need > back && v >= 0xC2 && v <= 0xF4) {
                start = length - back;              // an incomplete character: hold it
            }
            break;
        }
        return start;
    }
}
