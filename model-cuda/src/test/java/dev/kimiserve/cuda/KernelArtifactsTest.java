package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The committed kernel images are those of the committed sources: every {@code src/main/cuda/*.cu} has a fatbin whose
 * sidecar names the sha256 of the source followed by the shared headers ({@code *.cuh}), and where the build could run
 * nvcc (target/kernels-regenerated exists) the committed fatbins equal freshly compiled ones byte for byte. Fix a failure
 * with {@code model-cuda/build-kernels.sh}.
 */
class KernelArtifactsTest {
    static final Path MODULE = locateModule();
    static final Path SOURCES = MODULE.resolve("src/main/cuda");
    static final Path IMAGES = MODULE.resolve("src/main/resources/dev/kimiserve/cuda");

    static Path locateModule() {
        Path p = Path.of("").toAbsolutePath();
        return Files.isDirectory(p.resolve("src/main/cuda")) ? p : p.resolve("model-cuda");
    }

    static List<Path> sources() throws IOException {
        return filesEndingWith(".cu");
    }

    /** The shared headers (*.cuh, in name order): hashed after each source, whether it includes them or not. */
    static List<Path> headers() throws IOException {
        return filesEndingWith(".cuh");
    }

    static List<Path> filesEndingWith(String suffix) throws IOException {
        try (Stream<Path> s = Files.list(SOURCES)) {
            return s.filter(p -> p.getFileName().toString().endsWith(suffix)).sorted().toList();
        }
    }

    /** sha256 of the source followed by the headers in name order, as build-kernels.sh records it. */
    static String sourceHash(Path cu) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        sha.update(Files.readAllBytes(cu));
        for (Path h : headers()) {
            sha.update(Files.readAllBytes(h));
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    static String name(Path cu) {
        String f = cu.getFileName().toString();
        return f.substring(0, f.length() - 3);
    }

    @Test
    void everySourceHasAnImageBuiltFromIt() throws Exception {
        List<Path> cus = sources();
        assertTrue(!cus.isEmpty(), "kernel sources in " + SOURCES);
        for (Path cu : cus) {
            Path sidecar = IMAGES.resolve(name(cu) + ".fatbin.sha256");
            assertTrue(Files.isRegularFile(IMAGES.resolve(name(cu) + ".fatbin")), cu + " has no fatbin: run model-cuda/build-kernels.sh");
            assertTrue(Files.isRegularFile(sidecar), cu + " has no " + sidecar.getFileName() + ": run model-cuda/build-kernels.sh");
            String recorded = Files.readString(sidecar).trim().split("\\s+")[0];
            assertEquals(sourceHash(cu), recorded,
                    cu.getFileName() + " or a header it includes changed since its fatbin was built: run model-cuda/build-kernels.sh");
        }
    }

    @Test
    void whereNvccRanTheCommittedImagesEqualFreshOnes() throws Exception {
        String dir = System.getProperty("kimi.kernels.regenerated");
        Path fresh = dir == null ? null : Path.of(dir);
        if (fresh == null || !Files.isDirectory(fresh)) {
            System.out.println("KernelArtifactsTest: no nvcc in this build, committed images checked by source hash only");
            return;
        }
        for (Path cu : sources()) {
            String image = name(cu) + ".fatbin";
            assertArrayEquals(Files.readAllBytes(fresh.resolve(image)), Files.readAllBytes(IMAGES.resolve(image)),
                    image + " is stale: run model-cuda/build-kernels.sh and commit the result");
        }
    }
}
