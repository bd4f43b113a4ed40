package dev.kimiserve.cli;

import dev.kimiserve.core.generate.GenerationRequest;
import dev.kimiserve.core.generate.GenerationResult;
import dev.kimiserve.core.generate.Generator;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.sampling.SamplingParams;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code kimi generate}: generates from token ids and prints the ids and the prefill/decode timings. */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Generate tokens from prompt ids.")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--input-ids", required = true, converter = TokenIds.class, paramLabel = "IDS", description = "Prompt ids, e.g. 5,9,13.")
    TokenIds.IdList inputIds;

    @Option(names = "--max-tokens", defaultValue = "16", paramLabel = "N", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", paramLabel = "T", description = "0 = greedy (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1", paramLabel = "P")
    double topP;

    @Option(names = "--top-k", defaultValue = "0", paramLabel = "K", description = "0 = all tokens.")
    int topK;

    @Option(names = "--min-p", defaultValue = "0", paramLabel = "P")
    double minP;

    @Option(names = "--repetition-penalty", defaultValue = "1", paramLabel = "R")
    double repetitionPenalty;

    @Option(names = "--presence-penalty", defaultValue = "0", paramLabel = "X")
    double presencePenalty;

    @Option(names = "--frequency-penalty", defaultValue = "0", paramLabel = "X")
    double frequencyPenalty;

    @Option(names = "--seed", paramLabel = "S", description = "Seed for sampling (same seed, same tokens).")
    Long seed;

    @Option(names = "--stop-ids", converter = TokenIds.class, paramLabel = "IDS", description = "Extra ids that end generation.")
    TokenIds.IdList stopIds;

    @Option(names = "--ignore-eos", description = "Do not stop at the model's eos ids.")
    boolean ignoreEos;

    @Option(names = "--json", description = "Print one JSON object instead of text.")
    boolean json;

    @Override
    public Integer call() {
        SamplingParams sampling = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
        Set<Integer> stops = new HashSet<>();
        if (stopIds != null) {
            for (int id : stopIds.ids()) {
                stops.add(id);
            }
        }
        GenerationRequest request = new GenerationRequest(inputIds.ids(), sampling, maxTokens, stops, ignoreEos);
        try (LoadedModel loaded = modelOptions.open(); Engine engine = modelOptions.engine(loaded)) {
            GenerationResult r = new Generator(engine).generate(request, Generator.TokenListener.NONE);
            double prefillMs = r.prefillNanos() / 1e6;
            double decodeMs = r.decodeNanos() / 1e6;
            if (json) {
                System.out.printf(Locale.ROOT, "{\"ids\":[%s],\"finish_reason\":\"%s\",\"prompt_tokens\":%d,\"generated_tokens\":%d,"
                                + "\"prefill_ms\":%.3f,\"prefill_tokens_per_s\":%.2f,\"decode_ms\":%.3f,\"decode_tokens_per_s\":%.2f,\"backend\":\"%s\"}%n",
                        TokenIds.join(r.tokens()), r.finishReason().openAiName(), r.promptTokens(), r.tokens().length,
                        prefillMs, r.prefillTokensPerSecond(), decodeMs, r.decodeTokensPerSecond(), engine.backend());
            } else {
                System.out.println("ids: " + TokenIds.join(r.tokens()));
                System.out.printf(Locale.ROOT, "finish_reason: %s  prompt_tokens: %d  generated_tokens: %d  backend: %s%n",
                        r.finishReason().openAiName(), r.promptTokens(), r.tokens().length, engine.backend());
                System.out.printf(Locale.ROOT, "prefill: %.2f ms (%.1f tokens/s)  decode: %.2f ms for %d steps (%.1f tokens/s)%n",
                        prefillMs, r.prefillTokensPerSecond(), decodeMs, Math.max(0, r.tokens().length - 1), r.decodeTokensPerSecond());
            }
        }
        return 0;
    }
}
