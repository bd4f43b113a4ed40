package dev.kimiserve.core.state;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;

/**
 * Everything a decode step needs to continue one sequence: one {@link LayerState} per decoder layer, plus the number
 * of tokens consumed so far. A new sequence starts with zero conv windows, zero recurrent state and empty latent caches.
 * Sequences never share state.
 *
 * <p>A GPU engine keeps the newest copy of a state in device memory and marks it with {@link #residentOn}; any read of
 * the layers through this class first pulls that copy back into these arrays (and the mark is dropped, so the engine
 * uploads the host copy again before it next uses the state). The position is always current here.
 */
public final class SequenceState {
    /** Holds a newer copy of some states than their host arrays (a device engine). */
    public interface Residence {
        /** Copies the newest layers of {@code state} into its host arrays (through {@link #layer}, which is safe here). */
        void pull(SequenceState state);
    }

    private final LayerState[] layers;
    private long position;
    private Residence residence;

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
        toHost();
        return layers[i];
    }

    public KdaState kda(int i) {
        toHost();
        if (!(layers[i] instanceof KdaState k)) {
            throw new IllegalStateException("layer " + i + " is not a KDA layer");
        }
        return k;
    }

    public MlaCache mla(int i) {
        toHost();
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
        toHost();
        long n = 0;
        for (LayerState l : layers) {
            n += l.byteSize();
        }
        return n;
    }

    public void reset() {
        residence = null;
        for (LayerState l : layers) {
            l.reset();
        }
        position = 0;
    }

    public SequenceState copy() {
        toHost();
        LayerState[] c = new LayerState[layers.length];
        for (int i = 0; i < c.length; i++) {
            c[i] = layers[i].copy();
        }
        return new SequenceState(c, position);
    }

    /** Marks {@code holder} as having the newest copy of the layers (null: the host arrays are current). */
    public void residentOn(Residence holder) {
        residence = holder;
    }

    /** Who holds a newer copy than the host arrays, or null. */
    public Residence residence() {
        return residence;
    }

    private void toHost() {
        Residence holder = residence;
        if (holder != null) {
            residence = null;
            try {
                holder.pull(this);
            } catch (RuntimeException e) {
                residence = holder;                                  // still not on the host: every later read fails too
                throw e;
            }
        }
    }
}
