package dev.kimiserve.core.state;

/** Per-sequence state of one decoder layer: {@link KdaState} or {@link MlaCache}. */
public sealed interface LayerState permits KdaState, MlaCache {
    /** Bytes this state occupies in memory (fp32). */
    long byteSize();

    /** Forgets everything, as for a new sequence. */
    void reset();

    LayerState copy();
}
