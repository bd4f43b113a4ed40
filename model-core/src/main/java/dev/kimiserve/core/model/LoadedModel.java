package dev.kimiserve.core.model;

import dev.kimiserve.core.config.ConfigParser;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.safetensors.Checkpoint;
import dev.kimiserve.core.weights.ModelWeights;
import dev.kimiserve.core.weights.WeightLoader;
import java.nio.file.Path;

/**
 * A model directory opened for inference: its parsed config, the memory-mapped checkpoint and the bound weights.
 * Closing it unmaps the weights; engines built on it must not be used afterwards.
 */
public final class LoadedModel implements AutoCloseable {
    private final Path directory;
    private final KimiLinearConfig config;
    private final Checkpoint checkpoint;
    private final ModelWeights weights;

    private LoadedModel(Path directory, KimiLinearConfig config, Checkpoint checkpoint, ModelWeights weights) {
        this.directory = directory;
        this.config = config;
        this.checkpoint = checkpoint;
        this.weights = weights;
    }

    public static LoadedModel open(Path directory) {
        return open(directory, Options.DEFAULTS);
    }

    public static LoadedModel open(Path directory, Options options) {
        KimiLinearConfig config = ConfigParser.parse(directory);
        if (options.routerWeightsUseCorrectionBias() && config.moe() != null) {
            config = config.withMoe(config.moe().withWeightsUseCorrectionBias(true));
        }
        Checkpoint checkpoint = Checkpoint.open(directory);
        try {
            return new LoadedModel(directory, config, checkpoint, WeightLoader.load(checkpoint, config));
        } catch (RuntimeException e) {
            checkpoint.close();
            throw e;
        }
    }

    public Path directory() {
        return directory;
    }

    public KimiLinearConfig config() {
        return config;
    }

    public ModelWeights weights() {
        return weights;
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    @Override
    public void close() {
        checkpoint.close();
    }

    /**
     * Loading options that are not in config.json.
     *
     * @param routerWeightsUseCorrectionBias reproduce the released remote code's biased routing weights (spec 6.2)
     */
    public record Options(boolean routerWeightsUseCorrectionBias) {
        public static final Options DEFAULTS = new Options(false);
    }
}
