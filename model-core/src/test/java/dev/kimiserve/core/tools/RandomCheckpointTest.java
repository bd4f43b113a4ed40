package dev.kimiserve.core.tools;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.safetensors.Checkpoint;
import dev.kimiserve.core.testing.TestModels;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.ValueLayout;
import java.nio.channels.Channels;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A random checkpoint's tensors, written through a mapping of the file by parallel threads, hold exactly the bytes the
 * streaming path gives for the same seed, shard after shard; the values depend only on the seed and the tensor's name.
 */
class RandomCheckpointTest {
    @Test
    void mappedShardsHoldTheStreamedBytes(@TempDir Path dir) throws Exception {
        KimiLinearConfig cfg = TestModels.awkward();
        long seed = 7;
        RandomCheckpoint.write(cfg, dir, seed, 50_000, null);             // small shards: several files, tensors at many offsets
        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (RandomCheckpoint.Spec sp : RandomCheckpoint.specs(cfg)) {
                ByteArrayOutputStream streamed = new ByteArrayOutputStream();
                RandomCheckpoint.fill(sp, seed, Channels.newChannel(streamed));
                byte[] file = ck.tensor(sp.name()).data().toArray(ValueLayout.JAVA_BYTE);
                assertEquals(sp.bytes(), file.length, sp.name());
                assertArrayEquals(streamed.toByteArray(), file, sp.name());
            }
        }
    }
}
