package dev.kimiserve.core.cpu;

/**
 * Depthwise causal convolution + SiLU over one sequence's rows, continuing a conv window (spec section 3.1 item 2):
 * out[t][c] = silu(sum_j taps[c][j] * in[t - W + j][c]) with W = kernel - 1 taps of history, tap W for the current
 * token, and inputs before the window taken from {@code window} [c][W] (oldest first). Afterwards the window holds the
 * last W pre-conv inputs.
 */
public final class ShortConv {
    private ShortConv() {
    }

    /**
     * @param in     pre-conv projections [rows][channels]; rows [row0, row0 + count) are this sequence's
     * @param taps   [channels][W + 1]
     * @param window [channels][W], updated
     * @param out    [rows][channels], rows [row0, row0 + count) written
     */
    public static void forward(float[] in, int row0, int count, int channels, float[] taps, float[] window, int w, float[] out) {
        int kernel = w + 1;
        for (int c = 0; c < channels; c++) {
            int tb = c * kernel;
            int wb = c * w;
            for (int t = 0; t < count; t++) {
                float acc = taps[tb + w] * in[(row0 + t) * channels + c];
                for (int j = 0; j < w; j++) {
                    int src = t - w + j;
                    float val = src < 0 ? window[wb + w + src] : in[(row0 + src) * channels + c];
                    acc += taps[tb + j] * val;
                }
                out[(row0 + t) * channels + c] = Functions.silu(acc);
            }
            // new window = last w of (window ++ inputs)
            for (int j = 0; j < w; j++) {
                int src = count - w + j;
                window[wb + j] = src < 0 ? window[wb + w + src] : in[(row0 + src) * channels + c];
            }
        }
    }
}
