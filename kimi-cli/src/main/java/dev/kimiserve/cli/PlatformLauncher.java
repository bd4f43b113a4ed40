package dev.kimiserve.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Starts the platform as separate processes, in dependency order: a KRaft Kafka broker (unless an external bootstrap is
 * given), kv-store, scheduler, the prefill and decode workers, the gateway. Waits for each to be ready (its
 * {@code /q/health/ready}, the broker's port), and on failure stops everything and reports the failing service's log tail.
 * Used by {@code ./kimi up} and by the integration tests.
 */
public final class PlatformLauncher implements AutoCloseable {
    /**
     * @param repositoryRoot  where the built services live (their target/ folders)
     * @param kafkaBootstrap  an existing cluster, or null to start a broker
     * @param threadsPerWorker compute threads per worker (0 = cores / workers)
     * @param extraProperties system properties for the services: {@code kimi.gateway.*} go to the gateway only,
     *                        {@code kimi.scheduler.*} to the scheduler only, {@code kimi.worker.*} to the workers only,
     *                        anything else to every service
     */
    public record Options(Path repositoryRoot, Path modelDir, String modelName, int httpPort, String kafkaBootstrap,
                          int prefillWorkers, int decodeWorkers, int combinedWorkers, int threadsPerWorker, Path logDir,
                          Map<String, String> extraProperties) {
    }

    /** One started process. */
    public record Service(String name, Process process, Path log, int port) {
    }

    private final Options options;
    private final Consumer<String> progress;
    private final List<Service> services = new ArrayList<>();
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    /** Every port given to a service: each is free only until its service binds it, so none may be handed out twice. */
    private final Set<Integer> portsHandedOut = new HashSet<>();
    private String bootstrap;

    public PlatformLauncher(Options options, Consumer<String> progress) {
        this.options = options;
        this.progress = progress;
        portsHandedOut.add(options.httpPort());
    }

    public String kafkaBootstrap() {
        return bootstrap;
    }

    public String apiUrl() {
        return "http://localhost:" + options.httpPort();
    }

    public List<Service> services() {
        return List.copyOf(services);
    }

    public Service service(String name) {
        return services.stream().filter(s -> s.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no service " + name));
    }

    /** Starts everything and returns when every service is ready; throws with the failing service's log tail. */
    public void start(Duration timeout) {
        try {
            Files.createDirectories(options.logDir());
            Path root = options.repositoryRoot();
            if (options.kafkaBootstrap() == null) {
                int port = freePort();
                int controllerPort = freePort();
                deleteRecursively(options.logDir().resolve("kafka-data"));  // the scheduler keeps no state across runs: neither does the broker
                Service kafka = spawn("kafka", List.of("-Xmx512m", "-cp", root.resolve("kafka-broker/target/kafka-broker.jar") + java.io.File.pathSeparator
                        + root.resolve("kafka-broker/target/lib/*"), "dev.kimiserve.kafka.EmbeddedKafka", "--port", Integer.toString(port),
                        "--controller-port", Integer.toString(controllerPort), "--dir", options.logDir().resolve("kafka-data").toString()), port);
                waitForLog(kafka, "KAFKA_READY", timeout);
                bootstrap = "localhost:" + port;
            } else {
                bootstrap = options.kafkaBootstrap();
            }
            progress.accept("kafka: " + bootstrap);
            Map<String, String> common = new LinkedHashMap<>();
            common.put("kimi.kafka.bootstrap", bootstrap);
            common.put("kimi.model.dir", options.modelDir().toAbsolutePath().toString());
            if (options.modelName() != null) {
                common.put("kimi.model.name", options.modelName());
            }
            int kvPort = freePort();
            Service kv = quarkus("kv-store", "kv-store", kvPort, Map.of(), "-Xmx1g");
            Service scheduler = quarkus("scheduler", "scheduler-service", freePort(), propertiesFor("scheduler", common), "-Xmx512m");
            awaitReady(List.of(kv, scheduler), timeout);
            int workers = options.prefillWorkers() + options.decodeWorkers() + options.combinedWorkers();
            int threads = options.threadsPerWorker() > 0 ? options.threadsPerWorker()
                    : Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, workers));
            List<Service> started = new ArrayList<>();
            int n = 0;
            for (String role : new String[]{"prefill", "decode", "combined"}) {
                int count = role.equals("prefill") ? options.prefillWorkers() : role.equals("decode") ? options.decodeWorkers() : options.combinedWorkers();
                for (int i = 0; i < count; i++) {
                    Map<String, String> p = propertiesFor("worker", common);
                    p.put("kimi.worker.role", role);
                    p.put("kimi.worker.id", role + "-" + (++n));
                    p.put("kimi.worker.threads", Integer.toString(threads));
                    p.put("kimi.kv-store.url", "http://localhost:" + kvPort);
                    started.add(quarkus(role + "-worker-" + n, "kda-worker", freePort(), p, "-Xmx2g"));
                }
            }
            progress.accept("loading model weights in " + started.size() + " worker(s) ...");
            awaitReady(started, timeout);
            Service gateway = quarkus("gateway", "gateway-service", options.httpPort(), propertiesFor("gateway", common), "-Xmx768m");
            awaitReady(List.of(gateway), timeout);
        } catch (IOException e) {
            close();
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Deletes a folder and everything in it; nothing when it does not exist. */
    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    /** The common properties plus the extra ones meant for this service (see {@link Options}). */
    private Map<String, String> propertiesFor(String service, Map<String, String> common) {
        Map<String, String> props = new LinkedHashMap<>(common);
        options.extraProperties().forEach((key, value) -> {
            boolean scoped = key.startsWith("kimi.gateway.") || key.startsWith("kimi.scheduler.") || key.startsWith("kimi.worker.");
            if (!scoped || key.startsWith("kimi." + service + ".")) {
                props.put(key, value);
            }
        });
        return props;
    }

    private Service quarkus(String name, String module, int port, Map<String, String> props, String heap) {
        Path jar = options.repositoryRoot().resolve(module).resolve("target/quarkus-app/quarkus-run.jar");
        if (!Files.isRegularFile(jar)) {
            throw new PlatformException(name + ": " + jar + " is not built (run ./mvnw package -DskipTests)", null);
        }
        List<String> args = new ArrayList<>(List.of(heap, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-Dquarkus.http.port=" + port, "-Dquarkus.http.host=0.0.0.0"));
        props.forEach((k, v) -> args.add("-D" + k + "=" + v));
        args.addAll(List.of("-jar", jar.toString()));
        progress.accept("starting " + name + " (port " + port + ")");
        return spawn(name, args, port);
    }

    private Service spawn(String name, List<String> javaArgs, int port) {
        try {
            List<String> cmd = new ArrayList<>();
            cmd.add(ProcessHandle.current().info().command().orElse("java"));
            cmd.addAll(javaArgs);
            Path log = options.logDir().resolve(name + ".log");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            Service s = new Service(name, p, log, port);
            services.add(s);
            return s;
        } catch (IOException e) {
            throw new PlatformException("cannot start " + name + ": " + e.getMessage(), null);
        }
    }

    private void awaitReady(List<Service> group, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<Service> pending = new ArrayList<>(group);
        while (!pending.isEmpty()) {
            for (var it = pending.iterator(); it.hasNext(); ) {
                Service s = it.next();
                if (!s.process().isAlive()) {
                    throw new PlatformException(s.name() + " exited with status " + s.process().exitValue(), s);
                }
                if (ready(s)) {
                    progress.accept(s.name() + " ready");
                    it.remove();
                }
            }
            if (System.nanoTime() > deadline) {
                throw new PlatformException(pending.get(0).name() + " was not ready within " + timeout.toSeconds() + " s", pending.get(0));
            }
            sleep(200);
        }
    }

    private boolean ready(Service s) {
        try {
            HttpResponse<Void> r = http.send(HttpRequest.newBuilder(URI.create("http://localhost:" + s.port() + "/q/health/ready"))
                    .timeout(Duration.ofSeconds(2)).GET().build(), HttpResponse.BodyHandlers.discarding());
            return r.statusCode() == 200;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private void waitForLog(Service s, String marker, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!s.process().isAlive()) {
                throw new PlatformException(s.name() + " exited with status " + s.process().exitValue(), s);
            }
            try {
                if (Files.exists(s.log()) && Files.readString(s.log()).contains(marker)) {
                    return;
                }
            } catch (IOException ignored) {
                // retry
            }
            sleep(100);
        }
        throw new PlatformException(s.name() + " did not start within " + timeout.toSeconds() + " s", s);
    }

    /** Kills a service at once (SIGKILL), as a crash would. */
    public void kill(String name) {
        Service s = service(name);
        s.process().destroyForcibly();
        try {
            s.process().waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The last lines of a service's log. */
    public static String tail(Path log, int lines) {
        try {
            List<String> all = Files.readAllLines(log);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** Stops every service, gateway first, Kafka last: SIGTERM, then SIGKILL after 10 s. */
    @Override
    public void close() {
        List<Service> reversed = new ArrayList<>(services);
        java.util.Collections.reverse(reversed);
        for (Service s : reversed) {
            s.process().destroy();
        }
        for (Service s : reversed) {
            try {
                if (!s.process().waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                    s.process().destroyForcibly();
                }
            } catch (InterruptedException e) {
                s.process().destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
        services.clear();
    }

    /** A port nothing listens on now and that no service of this platform has been given. */
    private int freePort() {
        while (true) {
            try (ServerSocket s = new ServerSocket(0)) {
                if (portsHandedOut.add(s.getLocalPort())) {
                    return s.getLocalPort();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A service that did not come up. */
    public static final class PlatformException extends RuntimeException {
        private final transient Service service;

        public PlatformException(String message, Service service) {
            super(message);
            this.service = service;
        }

        public Service service() {
            return service;
        }
    }
}
