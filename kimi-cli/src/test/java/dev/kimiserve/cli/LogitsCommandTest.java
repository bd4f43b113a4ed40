package dev.kimiserve.cli;

import static dev.kimiserve.core.testing.Assertions2.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.safetensors.SafetensorsFile;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.testing.TinyA;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@code kimi logits} contract against transformers' outputs on tiny-a. */
class LogitsCommandTest {
    @TempDir
    Path dir;

    @Test
    void writesPrefillAndTeacherForcedDecodeLogits() {
        try (TinyA tiny = new TinyA()) {
            int[] prompt = tiny.prompt(7);
            int[] next = Arrays.copyOf(tiny.ids("generate.7.new_tokens"), 5);
            Path out = dir.resolve("logits.safetensors");
            int rc = KimiCli.run("logits", "--model", SharedFixtures.tinyA().toString(), "--input-ids", csv(prompt),
                    "--decode-ids", csv(next), "--out", out.toString());
            assertEquals(0, rc);
            try (SafetensorsFile f = SafetensorsFile.open(out)) {
                assertArrayEquals(new long[]{7, 512}, f.tensor("prefill_logits").shape());
                assertArrayEquals(new long[]{5, 512}, f.tensor("decode_logits").shape());
                assertClose("prefill_logits", tiny.floats("prefill.7.logits"), f.tensor("prefill_logits").toFloatArray(), 1e-4);
                // decode_logits[i] = logits after feeding next[i] = step_logits[i + 1]
                float[] step = tiny.floats("generate.7.step_logits");
                assertClose("decode_logits", Arrays.copyOfRange(step, 512, 6 * 512), f.tensor("decode_logits").toFloatArray(), 1e-4);
            }
        }
    }

    @Test
    void badInputsExitNonZero() {
        String model = SharedFixtures.tinyA().toString();
        assertEquals(2, KimiCli.run("logits", "--model", model, "--input-ids", "1,x", "--out", dir.resolve("a").toString()));
        assertEquals(1, KimiCli.run("logits", "--model", model, "--input-ids", "1,100000", "--out", dir.resolve("b").toString()));
        assertEquals(1, KimiCli.run("logits", "--model", dir.toString(), "--input-ids", "1", "--out", dir.resolve("c").toString()));
        assertTrue(!dir.resolve("b").toFile().exists());
    }

    @Test
    void generatePrintsGreedyIds() {
        try (TinyA tiny = new TinyA()) {
            java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
            java.io.PrintStream old = System.out;
            System.setOut(new java.io.PrintStream(buf, true));
            int rc;
            try {
                rc = KimiCli.run("generate", "--model", SharedFixtures.tinyA().toString(), "--input-ids", csv(tiny.prompt(7)),
                        "--max-tokens", "6", "--ignore-eos");
            } finally {
                System.setOut(old);
            }
            assertEquals(0, rc);
            String expected = csv(Arrays.copyOf(tiny.ids("generate.7.new_tokens"), 6));
            assertTrue(buf.toString().contains("ids: " + expected), buf.toString());
            assertTrue(buf.toString().contains("prefill:") && buf.toString().contains("decode:"), buf.toString());
        }
    }

    static String csv(int[] ids) {
        return Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(","));
    }
}
