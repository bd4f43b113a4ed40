package dev.kimiserve.core.cpu;

/** Grow-only scratch arrays: a forward pass allocates only when a batch is larger than every one before it. */
final class Buffers {
    private Buffers() {
    }

    static float[] atLeast(float[] a, int n) {
        return a != null && a.length >= n ? a : new float[n];
    }

    static int[] atLeast(int[] a, int n) {
        return a != null && a.length >= n ? a : new int[n];
    }
}
