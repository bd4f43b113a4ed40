package dev.kimiserve.core.cpu;

/**
 * Runs a list of {@link MatmulJob}s as one parallel region: work items are (job, block of output rows), pulled by the
 * pool's threads. Within an item, activation rows are taken in tiles of 64 so that both the weight rows and the
 * activations stay in cache; 4 weight rows x 4 activation rows per micro-kernel call.
 */
final class Matmuls {
    /** Output rows per work item. */
    static final int ROW_BLOCK = 16;
    private static final int TOKEN_TILE = 64;

    private final CpuPool pool;
    private MatmulJob[] jobs = new MatmulJob[0];
    private int count;
    private int[] firstItem = new int[1];
    private final ThreadLocal<float[]> results = ThreadLocal.withInitial(() -> new float[16]);

    Matmuls(CpuPool pool) {
        this.pool = pool;
    }

    /** Runs one job. */
    void run(MatmulJob job) {
        run(new MatmulJob[]{job}, 1);
    }

    /** Runs jobs[0 .. n) in one region. */
    void run(MatmulJob[] list, int n) {
        jobs = list;
        count = n;
        if (firstItem.length < n + 1) {
            firstItem = new int[n + 1];
        }
        int items = 0;
        for (int j = 0; j < n; j++) {
            firstItem[j] = items;
            items += (list[j].outputRows() + ROW_BLOCK - 1) / ROW_BLOCK;
        }
        firstItem[n] = items;
        pool.forRange(items, 1, this::items);
    }

    private void items(int from, int to) {
        float[] out = results.get();
        int j = 0;
        for (int item = from; item < to; item++) {
            while (firstItem[j + 1] <= item) {
                j++;
            }
            MatmulJob job = jobs[j];
            int o0 = (item - firstItem[j]) * ROW_BLOCK;
            int o1 = Math.min(job.outputRows(), o0 + ROW_BLOCK);
            if (job.up == null) {
                plain(job, o0, o1, out);
            } else {
                swiglu(job, o0, o1, out);
            }
        }
    }

    private static void plain(MatmulJob job, int o0, int o1, float[] out) {
        WeightMatrix w = job.w;
        for (int t0 = 0; t0 < job.rows; t0 += TOKEN_TILE) {
            int t1 = Math.min(job.rows, t0 + TOKEN_TILE);
            int o = o0;
            for (; o + 4 <= o1; o += 4) {
                int r = t0;
                for (; r + 4 <= t1; r += 4) {
                    MatmulKernels.dot4x4(w, o, w, o + 1, w, o + 2, w, o + 3, job.x, job.xOff + r * job.xStride, job.xStride, out);
                    for (int i = 0; i < 4; i++) {
                        int col = job.column(o + i);
                        for (int k = 0; k < 4; k++) {
                            job.y[job.yOff + (r + k) * job.yStride + col] = out[4 * i + k];
                        }
                    }
                }
                for (; r < t1; r++) {
                    MatmulKernels.dot4x1(w, o, w, o + 1, w, o + 2, w, o + 3, job.x, job.xOff + r * job.xStride, out);
                    int yb = job.yOff + r * job.yStride;
                    job.y[yb + job.column(o)] = out[0];
                    job.y[yb + job.column(o + 1)] = out[1];
                    job.y[yb + job.column(o + 2)] = out[2];
                    job.y[yb + job.column(o + 3)] = out[3];
                }
            }
            for (; o < o1; o++) {
                for (int r = t0; r < t1; r++) {
                    job.y[job.yOff + r * job.yStride + job.column(o)] = MatmulKernels.dot1(w, o, job.x, job.xOff + r * job.xStride);
                }
            }
        }
    }

    /** y = silu(gate . x) * (up . x), two output rows per micro-kernel call (gate o, gate o+1, up o, up o+1). */
    private static void swiglu(MatmulJob job, int o0, int o1, float[] out) {
        WeightMatrix g = job.w;
        WeightMatrix u = job.up;
        for (int t0 = 0; t0 < job.rows; t0 += TOKEN_TILE) {
            int t1 = Math.min(job.rows, t0 + TOKEN_TILE);
            int o = o0;
            for (; o + 2 <= o1; o += 2) {
                int r = t0;
                for (; r + 4 <= t1; r += 4) {
                    MatmulKernels.dot4x4(g, o, g, o + 1, u, o, u, o + 1, job.x, job.xOff + r * job.xStride, job.xStride, out);
                    int c0 = job.column(o);
                    int c1 = job.column(o + 1);
                    for (int k = 0; k < 4; k++) {
                        int yb = job.yOff + (r + k) * job.yStride;
                        job.y[yb + c0] = Functions.silu(out[k]) * out[8 + k];
                        job.y[yb + c1] = Functions.silu(out[4 + k]) * out[12 + k];
                    }
                }
                for (; r < t1; r++) {
                    MatmulKernels.dot4x1(g, o, g, o + 1, u, o, u, o + 1, job.x, job.xOff + r * job.xStride, out);
                    int yb = job.yOff + r * job.yStride;
                    job.y[yb + job.column(o)] = Functions.silu(out[0]) * out[2];
                    job.y[yb + job.column(o + 1)] = Functions.silu(out[1]) * out[3];
                }
            }
            for (; o < o1; o++) {
                for (int r = t0; r < t1; r++) {
                    int xo = job.xOff + r * job.xStride;
                    job.y[job.yOff + r * job.yStride + job.column(o)] = Functions.silu(MatmulKernels.dot1(g, o, job.x, xo)) * MatmulKernels.dot1(u, o, job.x, xo);
                }
            }
        }
    }
}
