package dev.kimiserve.it;

import dev.kimiserve.cli.PlatformLauncher;
import dev.kimiserve.core.testing.SharedFixtures;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

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

    /**
     * @param kafkaBootstrap an existing broker (KAFKA_BOOTSTRAP) or null to start one
     */
    static Platform start(String name, Path modelDir, String modelName, int prefill, int decode, int combined, Map<String, String> props) {
        Path root = SharedFixtures.repositoryRoot();
        Path logs = root.resolve("integration-tests/target/platform-logs").resolve(name);
        String external = System.getenv("KAFKA_BOOTSTRAP");
        PlatformLauncher l = new PlatformLauncher(new PlatformLauncher.Options(root, modelDir, modelName, freePort(),
                external == null || external.isBlank() ? null : external, prefill, decode, combined, 1, logs, props),
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
