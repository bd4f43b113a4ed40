package dev.kimiserve.cli;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code kimi bench-serving}: time to first token and inter-token latency of streamed generations, at several
 * concurrencies, either through a running platform ({@code --url}, streamed {@code /v1/completions}) or in-process
 * through model-core ({@code --model}: the same serving loop a worker runs, without Kafka, HTTP or the kv-store).
 * The difference between the two is the platform's own overhead. Each of C clients sends its requests one after the
 * other (closed loop); prompts are random token ids, greedy, {@code ignore_eos}. One JSON line per concurrency.
 */
@Command(name = "bench-serving", mixinStandardHelpOptions = true,
        description = "Measure TTFT and inter-token latency through the platform (--url) or in-process (--model).")
final class BenchServingCommand implements Callable<Integer> {
    @Option(names = "--url", paramLabel = "URL", description = "A running platform's API, e.g. http://localhost:8000.")
    String url;

    @Option(names = "--model", paramLabel = "DIR", description = "Run in-process through model-core on this model instead.")
    Path model;

    @Option(names = "--model-name", paramLabel = "NAME", description = "Model id to send (--url; default: the first of /v1/models).")
    String modelName;

    @Option(names = "--threads", paramLabel = "T", description = "Compute threads in-process (default: all cores).")
    Integer threads;

    @Option(names = "--concurrency", defaultValue = "1,8,32", split = ",", paramLabel = "C", description = "Concurrent streams (default: ${DEFAULT-VALUE}).")
    int[] concurrency;

    @Option(names = "--requests-per-client", defaultValue = "4", paramLabel = "N", description = "Requests each client sends (default: ${DEFAULT-VALUE}).")
    int requestsPerClient;

    @Option(names = "--prompt-tokens", defaultValue = "64", paramLabel = "P", description = "Prompt length (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--max-tokens", defaultValue = "32", paramLabel = "N", description = "Tokens generated per request (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--vocab", defaultValue = "1000", paramLabel = "V", description = "Prompt ids are drawn from [0, V) (default: ${DEFAULT-VALUE}).")
    int vocab;

    @Override
    public Integer call() throws Exception {
        if ((url == null) == (model == null)) {
            throw new IllegalArgumentException("give exactly one of --url (through the platform) and --model (in-process)");
        }
        if (requestsPerClient <= 0 || promptTokens <= 0 || maxTokens <= 1) {
            throw new IllegalArgumentException("--requests-per-client and --prompt-tokens must be > 0, --max-tokens > 1");
        }
        if (url != null) {
            try (ServingLoad.Platform target = new ServingLoad.Platform(url, modelName)) {
                run(target, "platform");
            }
        } else {
            try (LoadedModel loaded = LoadedModel.open(model);
                 Engine engine = Backends.create("auto", loaded.weights(), threads != null ? threads : Backends.defaultThreads());
                 ServingLoad.InProcess target = new ServingLoad.InProcess(engine)) {
                run(target, "in_process");
            }
        }
        return 0;
    }

    private void run(ServingLoad.Target target, String name) throws Exception {
        SplittableRandom rnd = new SplittableRandom(7);
        target.warmUp(prompt(rnd), maxTokens, java.util.Arrays.stream(concurrency).max().orElse(1));
        for (int c : concurrency) {
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < c * requestsPerClient; i++) {
                prompts.add(prompt(rnd));
            }
            ServingLoad.Result r = target.run(c, requestsPerClient, prompts, maxTokens);
            System.out.println(String.format(Locale.ROOT,
                    "{\"target\":\"%s\",\"concurrency\":%d,\"requests\":%d,\"prompt_tokens\":%d,\"max_tokens\":%d,"
                            + "\"ttft_ms_p50\":%.2f,\"ttft_ms_p99\":%.2f,\"itl_ms_p50\":%.3f,\"itl_ms_p99\":%.3f,"
                            + "\"e2e_ms_p50\":%.1f,\"output_tokens_per_s\":%.1f}",
                    name, c, prompts.size(), promptTokens, maxTokens, r.ttftMs(50), r.ttftMs(99), r.itlMs(50), r.itlMs(99),
                    r.e2eMs(50), r.outputTokensPerSecond()));
        }
    }

    private int[] prompt(SplittableRandom rnd) {
        int[] p = new int[promptTokens];
        for (int i = 0; i < p.length; i++) {
            p[i] = rnd.nextInt(Math.max(2, vocab));
        }
        return p;
    }
}
