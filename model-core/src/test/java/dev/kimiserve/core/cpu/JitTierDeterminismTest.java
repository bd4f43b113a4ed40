package dev.kimiserve.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The CPU engine computes the same bits before and after the JIT compiles its kernels. A worker serves its first
 * requests from interpreted and C1 code and later ones from C2; a sequence re-run on another worker after a failure
 * must reproduce exactly the tokens the client already has, and a seed must mean the same output at any time.
 */
class JitTierDeterminismTest {
    @Test
    void interpretedAndCompiledKernelsGiveIdenticalBits() throws Exception {
        for (int i = 0; i < 10; i++) {
            TierProbe.fingerprint();                                      // hot enough for C2 to take the kernels over
        }
        String compiled = TierProbe.fingerprint();
        String interpreted = runInterpreted();
        assertEquals(compiled, interpreted, "-Xint and C2 must agree bit for bit");
    }

    static String runInterpreted() throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(List.of(java, "-Xint", "--add-modules", "jdk.incubator.vector", "-cp",
                System.getProperty("java.class.path"), TierProbe.class.getName())).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the interpreted probe finishes");
        assertEquals(0, p.exitValue(), out);
        return out.lines().filter(l -> l.startsWith("FINGERPRINT ")).map(l -> l.substring(12)).findFirst()
                .orElseThrow(() -> new AssertionError("no fingerprint in: " + out));
    }
}
