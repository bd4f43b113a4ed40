package dev.kimiserve.core.tokenizer;

import java.util.PriorityQueue;

/**
 * Byte-pair merging of one pre-tokenized piece, with tiktoken's semantics: repeatedly merge the adjacent pair whose
 * concatenation has the lowest rank (the leftmost among equal ranks) until no adjacent pair is in the vocabulary; each
 * remaining part's rank is its token id. Short pieces use tiktoken's linear scan; long ones a heap with lazy deletion,
 * which merges in the same order in O(n log n).
 */
final class BytePairMerge {
    private static final int HEAP_THRESHOLD = 64;

    private BytePairMerge() {
    }

    /** Appends the ids of bytes[from, to) to {@code out}. */
    static void encode(RankTable ranks, byte[] bytes, int from, int to, IntList out) {
        int n = to - from;
        if (n == 1) {
            out.add(ranks.rank(bytes, from, to));
            return;
        }
        if (n < HEAP_THRESHOLD) {
            linear(ranks, bytes, from, to, out);
        } else {
            heap(ranks, bytes, from, to, out);
        }
    }

    /** tiktoken's algorithm: part boundaries with the rank of the pair starting at each; scan for the minimum. */
    private static void linear(RankTable ranks, byte[] bytes, int from, int to, IntList out) {
        int n = to - from;
        int[] start = new int[n + 1];
        int[] rank = new int[n + 1];
        int parts = n + 1;
        for (int i = 0; i <= n; i++) {
            start[i] = from + i;
        }
        for (int i = 0; i < n - 1; i++) {
            rank[i] = pairRank(ranks, bytes, start[i], start[i + 2]);
        }
        rank[n - 1] = Integer.MAX_VALUE;
        rank[n] = Integer.MAX_VALUE;
        while (parts > 2) {
            int best = Integer.MAX_VALUE;
            int at = -1;
            for (int i = 0; i < parts - 1; i++) {
                if (rank[i] < best) {
                    best = rank[i];
                    at = i;
                }
            }
            if (at < 0) {
                break;
            }
            // merge part at with part at+1: drop boundary at+1
            System.arraycopy(start, at + 2, start, at + 1, parts - at - 2);
            System.arraycopy(rank, at + 2, rank, at + 1, parts - at - 2);
            parts--;
            rank[at] = at + 2 < parts ? pairRank(ranks, bytes, start[at], start[at + 2]) : Integer.MAX_VALUE;
            if (at > 0) {
                rank[at - 1] = pairRank(ranks, bytes, start[at - 1], start[at + 1]);
            }
        }
        for (int i = 0; i < parts - 1; i++) {
            out.add(ranks.rank(bytes, start[i], start[i + 1]));
        }
    }

    private static int pairRank(RankTable ranks, byte[] bytes, int a, int b) {
        int r = ranks.rank(bytes, a, b);
        return r < 0 ? Integer.MAX_VALUE : r;
    }

    /**
     * The same merges in O(n log n): parts in a linked list (by start offset, n = end), candidate merges in a heap
     * ordered by (rank, start); an entry is stale once its left part has changed extent or right neighbour.
     */
    private static void heap(RankTable ranks, byte[] bytes, int from, int to, IntList out) {
        int n = to - from;
        int[] next = new int[n];
        int[] prev = new int[n];
        int[] version = new int[n];
        boolean[] alive = new boolean[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1;
            prev[i] = i - 1;
            alive[i] = true;
        }
        PriorityQueue<long[]> heap = new PriorityQueue<>((x, y) -> x[0] != y[0] ? Long.compare(x[0], y[0]) : Long.compare(x[1], y[1]));
        for (int i = 0; i + 1 < n; i++) {
            int r = ranks.rank(bytes, from + i, from + i + 2);
            if (r >= 0) {
                heap.add(new long[]{r, i, 0});
            }
        }
        while (!heap.isEmpty()) {
            long[] e = heap.poll();
            int i = (int) e[1];
            if (!alive[i] || version[i] != e[2]) {
                continue;
            }
            int j = next[i];                       // the right part, merged into i
            alive[j] = false;
            next[i] = next[j];
            if (next[i] < n) {
                prev[next[i]] = i;
            }
            version[i]++;
            if (next[i] < n) {
                int r = ranks.rank(bytes, from + i, from + next[next[i]]);
                if (r >= 0) {
                    heap.add(new long[]{r, i, version[i]});
                }
            }
            int p = prev[i];
            if (p >= 0) {
                version[p]++;
                int r = ranks.rank(bytes, from + p, from + next[i]);
                if (r >= 0) {
                    heap.add(new long[]{r, p, version[p]});
                }
            }
        }
        for (int i = 0; i < n; i = next[i]) {
            out.add(ranks.rank(bytes, from + i, from + next[i]));
        }
    }
}
