package dev.kimiserve.cli;

import dev.kimiserve.core.config.ConfigParser;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.tools.Presets;
import dev.kimiserve.core.tools.RandomCheckpoint;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kimi make-model}: a random-weight checkpoint in the real format, for benchmarks and demos. */
@Command(name = "make-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight checkpoint (config.json + bf16 safetensors) from a preset or a config.json.")
final class MakeModelCommand implements Callable<Integer> {
    static final class Source {
        @Option(names = "--config", paramLabel = "FILE", description = "A Kimi Linear config.json (either spelling).")
        Path config;

        @Option(names = "--preset", paramLabel = "NAME", description = "tiny, small, default or kimi-linear-48b.")
        String preset;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--layers", paramLabel = "K", description = "Keep only the first K layers (real layer shapes on small machines).")
    Integer layers;

    @Option(names = "--with-tokenizer", description = "Also write the Kimi tokenizer (tiktoken.model); implied by the default and kimi-linear-48b presets.")
    boolean withTokenizer;

    @Option(names = "--max-shard-gb", defaultValue = "4", paramLabel = "GB", description = "Shard size like the released checkpoint (default: ${DEFAULT-VALUE}).")
    double maxShardGb;

    @Override
    public Integer call() throws Exception {
        KimiLinearConfig cfg = source.preset != null ? Presets.get(source.preset) : ConfigParser.parse(source.config);
        if (layers != null) {
            cfg = cfg.withFirstLayers(layers);
        }
        long total = RandomCheckpoint.totalBytes(cfg);
        System.err.printf(Locale.ROOT, "writing %s: %d layers, %.2f GB of weights%n", out, cfg.numLayers(), total / 1e9);
        long[] lastPercent = {-1};
        RandomCheckpoint.write(cfg, out, seed, (long) (maxShardGb * 1e9), (done, all) -> {
            long pct = done * 100 / Math.max(1, all);
            if (pct / 10 != lastPercent[0] / 10 && total > 100_000_000) {
                System.err.printf(Locale.ROOT, "  %d%% (%.2f / %.2f GB)%n", pct, done / 1e9, all / 1e9);
            }
            lastPercent[0] = pct;
        });
        if (withTokenizer || (source.preset != null && Presets.usesKimiTokenizer(source.preset))) {
            dev.kimiserve.core.tokenizer.KimiTokenizer.writeBundled(out);
        }
        System.out.println("wrote " + out);
        return 0;
    }
}
