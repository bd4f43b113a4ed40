package dev.kimiserve.core.tokenizer;

import java.util.Arrays;

/**
 * Byte sequence -> rank, the BPE vocabulary, in an open-addressing table over one flat byte pool: a lookup of any
 * slice of a byte array hashes and compares in place, allocating nothing. Ranks are token ids.
 */
final class RankTable {
    private final byte[] pool;
    private final int[] offsets;   // by rank: start in pool
    private final int[] lengths;   // by rank
    private final int[] slots;     // rank + 1, or 0 for empty
    private final int mask;

    RankTable(byte[][] tokensByRank) {
        int total = 0;
        for (byte[] t : tokensByRank) {
            total += t == null ? 0 : t.length;
        }
        pool = new byte[total];
        offsets = new int[tokensByRank.length];
        lengths = new int[tokensByRank.length];
        int capacity = Integer.highestOneBit(Math.max(16, tokensByRank.length * 2)) << 1;
        slots = new int[capacity];
        mask = capacity - 1;
        int at = 0;
        for (int rank = 0; rank < tokensByRank.length; rank++) {
            byte[] t = tokensByRank[rank];
            if (t == null) {
                lengths[rank] = -1;
                continue;
            }
            System.arraycopy(t, 0, pool, at, t.length);
            offsets[rank] = at;
            lengths[rank] = t.length;
            at += t.length;
            int slot = (int) hash(t, 0, t.length) & mask;
            while (slots[slot] != 0) {
                if (equalsRank(slots[slot] - 1, t, 0, t.length)) {
                    throw new IllegalArgumentException("token bytes of rank " + rank + " repeat rank " + (slots[slot] - 1));
                }
                slot = (slot + 1) & mask;
            }
            slots[slot] = rank + 1;
        }
    }

    int size() {
        return lengths.length;
    }

    /** Rank of bytes[from, to), or -1. */
    int rank(byte[] bytes, int from, int to) {
        int slot = (int) hash(bytes, from, to) & mask;
        while (true) {
            int s = slots[slot];
            if (s == 0) {
                return -1;
            }
            if (equalsRank(s - 1, bytes, from, to)) {
                return s - 1;
            }
            slot = (slot + 1) & mask;
        }
    }

    /** The bytes of a rank, or null for a hole in the rank space. */
    byte[] bytes(int rank) {
        if (rank < 0 || rank >= lengths.length || lengths[rank] < 0) {
            return null;
        }
        return Arrays.copyOfRange(pool, offsets[rank], offsets[rank] + lengths[rank]);
    }

    /** Appends the bytes of a rank to {@code out} at {@code at}; returns the new end, or -1 for an unknown rank. */
    int copyBytes(int rank, byte[] out, int at) {
        if (rank < 0 || rank >= lengths.length || lengths[rank] < 0) {
            return -1;
        }
        System.arraycopy(pool, offsets[rank], out, at, lengths[rank]);
        return at + lengths[rank];
    }

    int length(int rank) {
        return rank < 0 || rank >= lengths.length ? -1 : lengths[rank];
    }

    private boolean equalsRank(int rank, byte[] b, int from, int to) {
        int len = to - from;
        if (lengths[rank] != len) {
            return false;
        }
        return Arrays.equals(pool, offsets[rank], offsets[rank] + len, b, from, to);
    }

    private static long hash(byte[] b, int from, int to) {
        long h = 0x9E3779B97F4A7C15L ^ (to - from);
        for (int i = from; i < to; i++) {
            h = (h ^ (b[i] & 0xff)) * 0x100000001B3L;
        }
        return h ^ (h >>> 29);
    }
}
