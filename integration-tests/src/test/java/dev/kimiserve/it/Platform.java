package dev.kimiserve.it;

import dev.kimiserve.cli.PlatformLauncher;
import dev.kimiserve.core.testing.SharedFixtures;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.kafka.KafkaContainer;

/** A running platform for one test class: every service its own process, as ./kimi up starts them. */
final class Platform implements AutoCloseable {
    final PlatformLauncher launcher;
    final OpenAi api;
    final String model;

    private Platform(PlatformLauncher launcher, String model) {
        this.launcher = launcher;
        this.api = new OpenAi(launcher.apiUrl());
        this.model = model;
    }

    private static KafkaContainer container;

    /**
     * The Kafka the platform uses: an existing cluster named by KAFKA_BOOTSTRAP; else, where a Docker engine runs, one
     * Testcontainers broker shared by the test classes; else null, and the launcher starts its KRaft broker process
     * (what ./kimi up does).
     */
    static synchronized String kafka() {
        String external = System.getenv("KAFKA_BOOTSTRAP");
        if (external != null && !external.isBlank()) {
            return external;
        }
        if (container == null && DockerClientFactory.instance().isDockerAvailable()) {
            container = new KafkaContainer("apache/kafka:4.1.2");
            container.start();
            Runtime.getRuntime().addShutdownHook(new Thread(container::stop));
        }
        return container == null ? null : container.getBootstrapServers();
    }

    static Platform start(String name, Path modelDir, String modelName, int prefill, int decode, int combined, Map<String, String> props) {
        Path root = SharedFixtures.repositoryRoot();
        Path logs = root.resolve("integration-tests/target/platform-logs").resolve(name);
        PlatformLauncher l = new PlatformLauncher(new PlatformLauncher.Options(root, modelDir, modelName, freePort(),
                kafka(), prefill, decode, combined, 1, logs, props),
                line -> System.out.println("[" + name + "] " + line));
        try {
            l.start(Duration.ofMinutes(3));
        } catch (PlatformLauncher.PlatformException e) {
            String tail = e.service() == null ? "" : "\n" + PlatformLauncher.tail(e.service().log(), 60);
            throw new AssertionError("platform " + name + " did not start: " + e.getMessage() + tail, e);
        }
        return new Platform(l, modelName);
    }

    static int freePort() {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            return s.getLocalPort();
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        launcher.close();
    }
}
