package dev.kimiserve.core.state;

import java.util.Arrays;

/**
 * Fixed-size state of one KDA layer for one sequence (spec section 3.2), all fp32:
 * <ul>
 *   <li>conv windows: the last {@code convWidth = kernel - 1} pre-conv projections of q, k and v, each laid out
 *       {@code [channel][convWidth]}, oldest token first (zeros before the sequence starts);</li>
 *   <li>recurrent state S laid out {@code [head][key][value]} ("k-first", as fla / transformers).</li>
 * </ul>
 */
public final class KdaState implements LayerState {
    private final int channels;
    private final int convWidth;
    private final int heads;
    private final int keyDim;
    private final int valueDim;
    /** [channels][convWidth] each. */
    public final float[] convQ;
    public final float[] convK;
    public final float[] convV;
    /** [heads][keyDim][valueDim]. */
    public final float[] recurrent;

    public KdaState(int heads, int keyDim, int valueDim, int convKernel) {
        this.heads = heads;
        this.keyDim = keyDim;
        this.valueDim = valueDim;
        this.channels = heads * keyDim;
        this.convWidth = convKernel - 1;
        if (keyDim != valueDim) {
            throw new IllegalArgumentException("q/k and v channels differ: the conv windows assume key dim == value dim");
        }
        this.convQ = new float[channels * convWidth];
        this.convK = new float[channels * convWidth];
        this.convV = new float[channels * convWidth];
        this.recurrent = new float[heads * keyDim * valueDim];
    }

    public int channels() {
        return channels;
    }

    public int convWidth() {
        return convWidth;
    }

    public int heads() {
        return heads;
    }

    public int keyDim() {
        return keyDim;
    }

    public int valueDim() {
        return valueDim;
    }

    @Override
    public long byteSize() {
        return 4L * (3L * convQ.length + recurrent.length);
    }

    @Override
    public void reset() {
        Arrays.fill(convQ, 0f);
        Arrays.fill(convK, 0f);
        Arrays.fill(convV, 0f);
        Arrays.fill(recurrent, 0f);
    }

    @Override
    public KdaState copy() {
        KdaState c = new KdaState(heads, keyDim, valueDim, convWidth + 1);
        System.arraycopy(convQ, 0, c.convQ, 0, convQ.length);
        System.arraycopy(convK, 0, c.convK, 0, convK.length);
        System.arraycopy(convV, 0, c.convV, 0, convV.length);
        System.arraycopy(recurrent, 0, c.recurrent, 0, recurrent.length);
        return c;
    }
}
