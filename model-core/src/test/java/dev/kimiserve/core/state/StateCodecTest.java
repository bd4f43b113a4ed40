package dev.kimiserve.core.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.config.ConfigParser;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.testing.ModelDirs;
import dev.kimiserve.core.testing.TinyA;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The versioned state layout: exact round trip, and every corruption refused. */
class StateCodecTest {
    @TempDir
    Path dir;

    @Test
    void roundTripContinuesBitForBit() {
        try (TinyA tiny = new TinyA()) {
            Engine engine = Backends.create("cpu", tiny.model.weights());
            KimiLinearConfig cfg = engine.config();
            SequenceState state = engine.newState();
            engine.prefill(tiny.prompt(150), state, Engine.Logits.LAST);
            byte[] blob = StateCodec.encode(state, cfg);
            assertEquals(StateCodec.encodedSize(state), blob.length);
            SequenceState restored = StateCodec.decode(blob, cfg);
            assertEquals(150, restored.position());
            assertArrayEquals(blob, StateCodec.encode(restored, cfg));
            assertArrayEquals(engine.decode(42, state), engine.decode(42, restored));
        }
    }

    @Test
    void corruptionTruncationAndForeignModelsAreRefused() throws IOException {
        try (TinyA tiny = new TinyA()) {
            Engine engine = Backends.create("cpu", tiny.model.weights());
            KimiLinearConfig cfg = engine.config();
            SequenceState state = engine.newState();
            engine.prefill(tiny.prompt(7), state, Engine.Logits.LAST);
            byte[] blob = StateCodec.encode(state, cfg);

            byte[] flipped = blob.clone();
            flipped[blob.length / 2] ^= 0x10;
            assertTrue(assertThrows(StateFormatException.class, () -> StateCodec.decode(flipped, cfg)).getMessage().contains("checksum"));

            byte[] truncated = Arrays.copyOf(blob, blob.length - 9);
            assertThrows(StateFormatException.class, () -> StateCodec.decode(truncated, cfg));

            Path other = Files.createDirectories(dir.resolve("other"));
            Files.writeString(other.resolve("config.json"), ModelDirs.TINY_A_RELEASED_CONFIG.replace("\"kv_lora_rank\": 32", "\"kv_lora_rank\": 24"));
            KimiLinearConfig otherCfg = ConfigParser.parse(other);
            assertTrue(assertThrows(StateFormatException.class, () -> StateCodec.decode(blob, otherCfg)).getMessage().contains("other shapes"));
        }
    }
}
