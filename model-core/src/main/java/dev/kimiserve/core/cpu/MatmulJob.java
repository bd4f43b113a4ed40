package dev.kimiserve.core.cpu;

/**
 * One matrix product of a region: y[yOff + r*yStride + o] = W[o] . x[xOff + r*xStride ..] for every output row o of W
 * and activation row r < rows (x in paired order). With {@code up} set it is a fused SwiGLU:
 * y = silu(W[o] . x) * (up[o] . x). Jobs are mutable and reused so that a forward pass allocates nothing.
 */
final class MatmulJob {
    WeightMatrix w;
    WeightMatrix up;
    float[] x;
    int xOff;
    int xStride;
    int rows;
    float[] y;
    int yOff;
    int yStride;
    /** When true, each output row is written in paired order (ready to be the next matmul's input). */
    boolean pairedOutput;

    MatmulJob set(WeightMatrix w, float[] x, int xOff, int xStride, int rows, float[] y, int yOff, int yStride) {
        this.w = w;
        this.up = null;
        this.x = x;
        this.xOff = xOff;
        this.xStride = xStride;
        this.rows = rows;
        this.y = y;
        this.yOff = yOff;
        this.yStride = yStride;
        this.pairedOutput = false;
        return this;
    }

    /** y [rows, W.rows] contiguous from x [rows, W.cols] contiguous. */
    MatmulJob set(WeightMatrix w, float[] x, int rows, float[] y) {
        return set(w, x, 0, w.cols, rows, y, 0, w.rows);
    }

    MatmulJob swiglu(WeightMatrix gate, WeightMatrix upProj, float[] x, int xOff, int xStride, int rows, float[] y, int yOff, int yStride) {
        set(gate, x, xOff, xStride, rows, y, yOff, yStride);
        this.up = upProj;
        return this;
    }

    /** Writes the outputs in paired order, so the next matmul can read them directly. */
    MatmulJob paired() {
        this.pairedOutput = true;
        return this;
    }

    /** Column index of output row o in y: natural, or paired within the W.rows outputs. */
    int column(int o) {
        return pairedOutput ? Vec.pairedIndex(o, w.rows) : o;
    }

    int outputRows() {
        return w.rows;
    }
}
