package dev.kimiserve.cli;

import dev.kimiserve.core.tools.Presets;
import dev.kimiserve.core.tools.RandomCheckpoint;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kimi up}: the whole platform on this machine, each service its own process. */
@Command(name = "up", mixinStandardHelpOptions = true, description = "Start the platform (Kafka, kv-store, scheduler, workers, gateway).")
public final class UpCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "DIR", description = "Model directory (Hugging Face layout). Default: the bundled default model, made on first use.")
    Path model;

    @Option(names = "--http-port", defaultValue = "8000", paramLabel = "PORT", description = "Port of the OpenAI API (default: ${DEFAULT-VALUE}).")
    int httpPort;

    @Option(names = "--kafka-bootstrap", paramLabel = "HOST:PORT", description = "Use an existing Kafka cluster instead of starting a broker.")
    String kafkaBootstrap;

    @Option(names = "--prefill-workers", defaultValue = "1", paramLabel = "N", description = "Prefill pool size (default: ${DEFAULT-VALUE}).")
    int prefillWorkers;

    @Option(names = "--decode-workers", defaultValue = "1", paramLabel = "N", description = "Decode pool size (default: ${DEFAULT-VALUE}).")
    int decodeWorkers;

    @Option(names = "--threads-per-worker", defaultValue = "0", paramLabel = "T", description = "Compute threads per worker (default: cores / workers).")
    int threadsPerWorker;

    @Option(names = "--model-name", paramLabel = "NAME", description = "Model id clients send (default: the directory name).")
    String modelName;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Require this API key (repeatable). Default: no authentication.")
    java.util.List<String> apiKeys;

    @Option(names = "--log-dir", paramLabel = "DIR", description = "Where the services write their logs (default: .kimi/logs).")
    Path logDir;

    @Override
    public Integer call() throws Exception {
        if (prefillWorkers < 1 || decodeWorkers < 1) {
            throw new IllegalArgumentException("--prefill-workers and --decode-workers must be at least 1");
        }
        Path home = Path.of(System.getProperty("kimi.home", "."));
        Path logs = logDir != null ? logDir : home.resolve(".kimi/logs");
        Path dir = model != null ? model : ensureDefaultModel(home.resolve(".kimi/models/default"));
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw new IllegalArgumentException(dir + " is not a model directory (no config.json)");
        }
        Map<String, String> extra = new LinkedHashMap<>();
        if (apiKeys != null && !apiKeys.isEmpty()) {
            extra.put("kimi.gateway.api-keys", String.join(",", apiKeys));
        }
        PlatformLauncher launcher = new PlatformLauncher(new PlatformLauncher.Options(home, dir, modelName, httpPort, kafkaBootstrap,
                prefillWorkers, decodeWorkers, 0, threadsPerWorker, logs, extra), line -> System.err.println("  " + line));
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("stopping the platform ...");
            launcher.close();
            stop.countDown();
        }, "kimi-up-shutdown"));
        System.err.println("kimi up: starting the platform (logs in " + logs.toAbsolutePath() + ")");
        try {
            launcher.start(Duration.ofMinutes(5));
        } catch (PlatformLauncher.PlatformException e) {
            System.err.println("kimi up: " + e.getMessage());
            if (e.service() != null) {
                System.err.println("last lines of " + e.service().log() + ":");
                System.err.println(PlatformLauncher.tail(e.service().log(), 40));
            }
            return 1;
        }
        String name = modelName != null ? modelName : dir.toAbsolutePath().normalize().getFileName().toString();
        boolean text = KimiTokenizer.present(dir);
        System.out.println();
        System.out.println("kimi-serve is up.");
        System.out.println("  OpenAI API:      " + launcher.apiUrl() + "/v1   (model \"" + name + "\")");
        System.out.println("  Kafka bootstrap: " + launcher.kafkaBootstrap() + "   (produce to kimi.requests, read kimi.responses)");
        System.out.println("  Logs:            " + logs.toAbsolutePath());
        System.out.println("Try:");
        String auth = apiKeys != null && !apiKeys.isEmpty() ? " -H 'Authorization: Bearer " + apiKeys.get(0) + "'" : "";
        if (text) {
            System.out.println("  curl " + launcher.apiUrl() + "/v1/chat/completions -H 'Content-Type: application/json'" + auth
                    + " -d '{\"model\": \"" + name + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}], \"max_tokens\": 16}'");
        } else {
            System.out.println("  curl " + launcher.apiUrl() + "/v1/completions -H 'Content-Type: application/json'" + auth
                    + " -d '{\"model\": \"" + name + "\", \"prompt\": [5, 9, 13], \"max_tokens\": 16, \"return_token_ids\": true}'");
        }
        System.out.println("Press Ctrl-C to stop.");
        stop.await();
        return 0;
    }

    /**
     * The bundled default model: random weights, the real Kimi tokenizer, small shapes; made once, in a side folder
     * renamed into place when complete, so that an interrupted first run never leaves a half-written model behind.
     */
    public static synchronized Path ensureDefaultModel(Path dir) throws Exception {
        if (Files.isRegularFile(dir.resolve("config.json")) && Files.isRegularFile(dir.resolve("model.safetensors"))
                && KimiTokenizer.present(dir)) {
            return dir;
        }
        System.err.println("kimi up: making the bundled default model in " + dir + " (first use) ...");
        Path partial = dir.resolveSibling(dir.getFileName() + ".partial");
        PlatformLauncher.deleteRecursively(partial);
        PlatformLauncher.deleteRecursively(dir);
        RandomCheckpoint.write(Presets.get("default"), partial, 0, Long.MAX_VALUE, null);
        KimiTokenizer.writeBundled(partial);
        Files.move(partial, dir, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        return dir;
    }

}
