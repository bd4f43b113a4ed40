package dev.kimiserve.cli;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options shared by commands that load a model. */
final class ModelOptions {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config.json + safetensors).")
    Path model;

    @Option(names = "--backend", defaultValue = "auto", paramLabel = "NAME",
            description = "Compute backend: auto (cuda where a GPU is usable, else cpu), cpu, cuda, reference (default: ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--router-biased-weights",
            description = "Routing weights from sigmoid + correction bias, as the released remote code computes them.")
    boolean routerBiasedWeights;

    @Option(names = "--threads", paramLabel = "T", description = "Compute threads of the cpu backend (default: all cores).")
    Integer threads;

    int threads() {
        return threads != null ? threads : Backends.defaultThreads();
    }

    LoadedModel open() {
        return LoadedModel.open(model, new LoadedModel.Options(routerBiasedWeights));
    }

    Engine engine(LoadedModel loaded) {
        return Backends.create(backend, loaded.weights(), threads());
    }
}
