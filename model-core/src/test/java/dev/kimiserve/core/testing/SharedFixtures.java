package dev.kimiserve.core.testing;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Finds the team's shared folder (fixtures, docs): {@code KIMI_SHARED} (environment) or {@code kimi.shared} (system
 * property) when set, else {@code ../shared} beside the repository root, found by walking up from the working
 * directory to the folder holding {@code mvnw}. Missing fixtures fail the test with the reason (CI always has them).
 */
public final class SharedFixtures {
    private SharedFixtures() {
    }

    public static Path sharedDir() {
        String explicit = System.getenv("KIMI_SHARED");
        if (explicit == null || explicit.isBlank()) {
            explicit = System.getProperty("kimi.shared");
        }
        if (explicit != null && !explicit.isBlank()) {
            Path p = Path.of(explicit).toAbsolutePath().normalize();
            if (!Files.isDirectory(p.resolve("fixtures"))) {
                throw new IllegalStateException("KIMI_SHARED=" + p + " has no fixtures/ folder");
            }
            return p;
        }
        Path root = repositoryRoot();
        Path shared = root.getParent() == null ? null : root.getParent().resolve("shared");
        if (shared == null || !Files.isDirectory(shared.resolve("fixtures"))) {
            throw new IllegalStateException("shared fixtures not found: expected " + (shared == null ? "../shared" : shared)
                    + "/fixtures beside the repository root " + root + " (or set KIMI_SHARED to the shared folder)");
        }
        return shared;
    }

    public static Path repositoryRoot() {
        Path dir = Path.of("").toAbsolutePath();
        for (Path p = dir; p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("mvnw")) && Files.isDirectory(p.resolve("model-core"))) {
                return p;
            }
        }
        throw new IllegalStateException("cannot find the repository root (a folder with mvnw and model-core/) above " + dir);
    }

    public static Path fixture(String name) {
        Path p = sharedDir().resolve("fixtures").resolve(name);
        if (!Files.exists(p)) {
            throw new IllegalStateException("fixture " + p + " is missing from the shared folder");
        }
        return p;
    }

    public static Path tinyA() {
        return fixture("tiny-a");
    }
}
