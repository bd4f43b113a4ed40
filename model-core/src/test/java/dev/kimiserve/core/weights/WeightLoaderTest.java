package dev.kimiserve.core.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.testing.ModelDirs;
import dev.kimiserve.core.testing.SharedFixtures;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Binding checkpoints to the model: both config spellings, and missing / unexpected / misshapen tensors named. */
class WeightLoaderTest {
    static final int[] PROMPT = {5, 9, 13, 300, 17};

    @TempDir
    Path dir;

    @Test
    void bothConfigSpellingsGiveTheSameModel() throws IOException {
        Path released = ModelDirs.withConfig(SharedFixtures.tinyA(), dir.resolve("released"), ModelDirs.TINY_A_RELEASED_CONFIG);
        try (LoadedModel a = LoadedModel.open(SharedFixtures.tinyA()); LoadedModel b = LoadedModel.open(released)) {
            Engine ea = Backends.create("cpu", a.weights());
            Engine eb = Backends.create("cpu", b.weights());
            assertArrayEquals(ea.prefill(PROMPT, ea.newState(), Engine.Logits.ALL), eb.prefill(PROMPT, eb.newState(), Engine.Logits.ALL));
        }
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        String gone = "model.layers.2.self_attn.dt_bias";
        Path d = ModelDirs.withTensors(SharedFixtures.tinyA(), dir.resolve("missing"), n -> !n.equals(gone));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(d));
        assertTrue(e.getMessage().contains("missing tensors (1)") && e.getMessage().contains(gone), e.getMessage());
    }

    @Test
    void unexpectedTensorIsNamed() throws IOException {
        String extra = "model.layers.1.self_attn.rotary_emb.inv_freq";
        Path d = ModelDirs.withTensors(SharedFixtures.tinyA(), dir.resolve("extra"), n -> true, extra);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(d));
        assertTrue(e.getMessage().contains("unexpected tensors (1)") && e.getMessage().contains(extra), e.getMessage());
    }

    @Test
    void missingExpertListsEveryMissingName() throws IOException {
        Path d = ModelDirs.withTensors(SharedFixtures.tinyA(), dir.resolve("experts"), n -> !n.contains("experts.7."));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(d));
        for (int layer = 1; layer <= 3; layer++) {
            for (String w : new String[]{"w1", "w2", "w3"}) {
                assertTrue(e.getMessage().contains("model.layers." + layer + ".block_sparse_moe.experts.7." + w + ".weight"), e.getMessage());
            }
        }
    }

    @Test
    void configThatDisagreesWithTheShapesIsNamed() throws IOException {
        Path d = ModelDirs.withConfig(SharedFixtures.tinyA(), dir.resolve("shape"),
                ModelDirs.TINY_A_RELEASED_CONFIG.replace("\"kv_lora_rank\": 32", "\"kv_lora_rank\": 24"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LoadedModel.open(d));
        assertTrue(e.getMessage().contains("model.layers.3.self_attn.kv_a_proj_with_mqa.weight") && e.getMessage().contains("expected [32, 64]"),
                e.getMessage());
    }
}
