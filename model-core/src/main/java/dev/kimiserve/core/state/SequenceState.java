package dev.kimiserve.core.state;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;

/**
 * Everything a decode step needs to continue one sequence: one {@link LayerState} per decoder layer, plus the number
 * of tokens consumed so far. A new sequence starts with zero conv windows, zero recurrent state and empty latent caches.
 * Sequences never share state.
 */
public final class SequenceState {
    private final LayerState[] layers;
    private long position;

    private SequenceState(LayerState[] layers, long position) {
        this.layers = layers;
        this.position = position;
    }

    public static SequenceState create(KimiLinearConfig cfg) {
        LayerState[] layers = new LayerState[cfg.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = cfg.layerKind(i) == LayerKind.KDA
                    ? new KdaState(cfg.kda().numHeads(), cfg.kda().headDim(), cfg.kda().headDim(), cfg.kda().convKernel())
                    : new MlaCache(cfg.mla().latentSize());
        }
        return new SequenceState(layers, 0);
    }

    /** Assembles a state from decoded parts (see {@link StateCodec}). */
    static SequenceState of(LayerState[] layers, long position) {
        return new SequenceState(layers.clone(), position);
    }

    public int numLayers() {
        return layers.length;
    }

    public LayerState layer(int i) {
        return layers[i];
    }

    public KdaState kda(int i) {
        if (!(layers[i] instanceof KdaState k)) {
            throw new IllegalStateException("layer " + i + " is not a KDA layer");
        }
        return k;
    }

    public MlaCache mla(int i) {
        if (!(layers[i] instanceof MlaCache m)) {
            throw new IllegalStateException("layer " + i + " is not an MLA layer");
        }
        return m;
    }

    /** Tokens consumed so far. */
    public long position() {
        return position;
    }

    public void advance(int tokens) {
        position += tokens;
    }

    public long byteSize() {
        long n = 0;
        for (LayerState l : layers) {
            n += l.byteSize();
        }
        return n;
    }

    public void reset() {
        for (LayerState l : layers) {
            l.reset();
        }
        position = 0;
    }

    public SequenceState copy() {
        LayerState[] c = new LayerState[layers.length];
        for (int i = 0; i < c.length; i++) {
            c[i] = layers[i].copy();
        }
        return new SequenceState(c, position);
    }
}
