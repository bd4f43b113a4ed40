package dev.kimiserve.core.model;

import dev.kimiserve.core.weights.ModelWeights;

/**
 * A compute backend packaged outside model-core (the cuda backend in model-cuda), found with {@link java.util.ServiceLoader}
 * by {@link Backends}: it says why it cannot run here (no device, no driver) before it is asked to build an engine.
 */
public interface EngineProvider {
    /** The backend's name, as given to {@code --backend}. */
    String name();

    /** Null when an engine can be made on this machine, else the reason it cannot (logged when auto skips it). */
    String unavailableReason();

    Engine create(ModelWeights weights);
}
