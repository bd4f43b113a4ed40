package dev.kimiserve.cuda;

import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.EngineProvider;
import dev.kimiserve.core.weights.ModelWeights;

/** Offers the cuda backend to model-core's {@code Backends} (META-INF/services). */
public final class CudaEngineProvider implements EngineProvider {
    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public String unavailableReason() {
        return CudaDevice.unavailableReason();
    }

    @Override
    public Engine create(ModelWeights weights) {
        return new CudaEngine(weights);
    }
}
