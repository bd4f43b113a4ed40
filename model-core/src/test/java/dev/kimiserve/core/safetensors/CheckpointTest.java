package dev.kimiserve.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Single-file and sharded checkpoints (model.safetensors.index.json). */
class CheckpointTest {
    @TempDir
    Path dir;

    @Test
    void shardedCheckpointResolvesEveryTensorToItsShard() throws IOException {
        new SafetensorsWriter().addF32("a", new long[]{2}, new float[]{1, 2}).write(dir.resolve("model-00001-of-00002.safetensors"));
        new SafetensorsWriter().addF32("b", new long[]{1}, new float[]{3}).write(dir.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), """
                {"metadata": {"total_size": 12}, "weight_map": {
                  "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}""");
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(2, c.names().size());
            assertArrayEquals(new float[]{1, 2}, c.tensor("a").toFloatArray());
            assertArrayEquals(new float[]{3}, c.tensor("b").toFloatArray());
            assertTrue(c.fileOf("b").toString().endsWith("00002-of-00002.safetensors"));
        }
    }

    @Test
    void indexNamingAMissingShardOrTensorIsNamed() throws IOException {
        new SafetensorsWriter().addF32("a", new long[]{2}, new float[]{1, 2}).write(dir.resolve("s1.safetensors"));
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("'b'") && e.getMessage().contains("s2.safetensors"), e.getMessage());
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\": {\"a\": \"s1.safetensors\", \"zz\": \"s1.safetensors\"}}");
        e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("'zz'") && e.getMessage().contains("not in this shard"), e.getMessage());
    }

    @Test
    void directoryWithoutWeightsIsNamed() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains(dir.toString()) && e.getMessage().contains("model.safetensors"), e.getMessage());
    }
}
