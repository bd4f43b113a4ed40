package dev.kimiserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.testing.ModelDirs;
import dev.kimiserve.core.testing.SharedFixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Both spellings of config.json normalise to one record; every bad field is named. */
class ConfigParserTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void transformersSpellingOfTinyA() {
        KimiLinearConfig c = ConfigParser.parse(SharedFixtures.tinyA());
        assertEquals(List.of(LayerKind.KDA, LayerKind.KDA, LayerKind.KDA, LayerKind.MLA), c.layerKinds());
        assertEquals(List.of(MlpKind.DENSE, MlpKind.MOE, MlpKind.MOE, MlpKind.MOE), c.mlpKinds());
        assertEquals(new KdaConfig(2, 32, 4), c.kda());
        assertEquals(new MlaConfig(2, 16, 8, 16, 32, 0, 1e-6f), c.mla());
        assertEquals(new MoeConfig(8, 2, 32, 1, 1, 1, true, 2.446f, false), c.moe());
        assertEquals(List.of(2), c.eosTokenIds());
        assertEquals(512, c.vocabSize());
        assertEquals(128, c.intermediateSize());
    }

    @Test
    void releasedSpellingGivesTheSameRecord() throws IOException {
        Path released = write(ModelDirs.TINY_A_RELEASED_CONFIG);
        assertEquals(ConfigParser.parse(SharedFixtures.tinyA()), ConfigParser.parse(released));
    }

    @Test
    void released48bConfigHasOneIndexedLayerLists() throws IOException {
        KimiLinearConfig c = ConfigParser.parse(write(KIMI_48B));
        List<Integer> mla = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) {
            if (c.layerKind(i) == LayerKind.MLA) {
                mla.add(i);
            }
        }
        assertEquals(List.of(3, 7, 11, 15, 19, 23, 26), mla);
        assertEquals(MlpKind.DENSE, c.mlpKind(0));
        assertTrue(c.mlpKinds().subList(1, 27).stream().allMatch(k -> k == MlpKind.MOE));
        assertEquals(new KdaConfig(32, 128, 4), c.kda());
        assertEquals(576, c.mla().latentSize());
        assertEquals(256, c.moe().numExperts());
        assertEquals(8, c.moe().expertsPerToken());
        assertEquals(List.of(163586), c.eosTokenIds());
    }

    @Test
    void unknownModelTypeIsNamed() throws IOException {
        assertField("model_type", edit(n -> n.put("model_type", "llama")));
        assertField("model_type", edit(n -> n.remove("model_type")));
    }

    @Test
    void missingFieldsAreNamed() throws IOException {
        assertField("hidden_size", edit(n -> n.remove("hidden_size")));
        assertField("kv_lora_rank", edit(n -> n.remove("kv_lora_rank")));
        assertField("linear_head_dim", edit(n -> n.remove("linear_head_dim")));
        assertField("layer_types", edit(n -> n.remove("layer_types")));
        assertField("num_experts", edit(n -> n.remove("num_experts")));
        assertField("routed_scaling_factor", edit(n -> n.remove("routed_scaling_factor")));
    }

    @Test
    void inconsistentFieldsAreNamed() throws IOException {
        assertField("layer_types", edit(n -> n.putArray("layer_types").add("linear_attention").add("full_attention")));
        assertField("layer_types[1]", edit(n -> n.putArray("layer_types").add("linear_attention").add("sliding").add("x").add("y")));
        assertField("num_experts_per_token", edit(n -> n.put("num_experts_per_token", 9)));
        assertField("hidden_size", edit(n -> n.put("hidden_size", "64")));
        assertField("mla_use_output_gate", edit(n -> n.put("mla_use_output_gate", true)));
        assertField("eos_token_id", edit(n -> n.put("eos_token_id", 9999)));
        // both spellings present but disagreeing
        assertField("linear_attn_config.full_attn_layers", edit(n -> n.putObject("linear_attn_config").put("num_heads", 2)
                .set("kda_layers", JSON.createArrayNode().add(1).add(2).add(4))));
        assertField("layer_types", edit(n -> {
            ObjectNode lac = n.putObject("linear_attn_config");
            lac.set("kda_layers", JSON.createArrayNode().add(1).add(2).add(4));
            lac.set("full_attn_layers", JSON.createArrayNode().add(3));
        }));
        assertField("mlp_layer_types", edit(n -> n.put("first_k_dense_replace", 2)));
    }

    @Test
    void zeroIndexedKdaLayersAreRejected() throws IOException {
        String zeroIndexed = ModelDirs.TINY_A_RELEASED_CONFIG.replace("\"kda_layers\": [1, 2, 3]", "\"kda_layers\": [0, 1, 2]")
                .replace("\"full_attn_layers\": [4]", "\"full_attn_layers\": [3]");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ConfigParser.parse(write(zeroIndexed)));
        assertTrue(e.getMessage().contains("linear_attn_config.kda_layers") && e.getMessage().contains("1-indexed"), e.getMessage());
    }

    @Test
    void routerFlagIsReadFromConfigAndDefaultsToUnbiased() throws IOException {
        assertFalse(ConfigParser.parse(SharedFixtures.tinyA()).moe().weightsUseCorrectionBias());
        assertTrue(ConfigParser.parse(edit(n -> n.put("router_weight_uses_score_correction_bias", true))).moe().weightsUseCorrectionBias());
    }

    private void assertField(String field, Path config) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ConfigParser.parse(config));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("'" + field + "'"),
                "expected the message to name config.json and '" + field + "': " + e.getMessage());
    }

    private Path edit(Consumer<ObjectNode> change) throws IOException {
        ObjectNode n = (ObjectNode) JSON.readTree(SharedFixtures.tinyA().resolve("config.json").toFile());
        change.accept(n);
        return write(JSON.writeValueAsString(n));
    }

    private Path write(String json) throws IOException {
        Path d = Files.createTempDirectory(dir, "cfg");
        Files.writeString(d.resolve("config.json"), json);
        return d;
    }

    /** The released Kimi-Linear-48B-A3B-Instruct config.json (spec section 1.1). */
    static final String KIMI_48B = """
            {
              "architectures": ["KimiLinearForCausalLM"], "model_type": "kimi_linear", "dtype": "bfloat16",
              "vocab_size": 163840, "hidden_size": 2304, "num_hidden_layers": 27, "intermediate_size": 9216,
              "hidden_act": "silu", "rms_norm_eps": 1e-05, "head_dim": 72, "num_attention_heads": 32, "num_key_value_heads": 32,
              "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
              "mla_use_nope": true, "rope_theta": 10000.0, "rope_scaling": null, "model_max_length": 1048576,
              "linear_attn_config": {
                "kda_layers": [1,2,3,5,6,7,9,10,11,13,14,15,17,18,19,21,22,23,25,26],
                "full_attn_layers": [4,8,12,16,20,24,27], "num_heads": 32, "head_dim": 128, "short_conv_kernel_size": 4},
              "num_experts": 256, "num_experts_per_token": 8, "num_shared_experts": 1, "moe_intermediate_size": 1024,
              "moe_router_activation_func": "sigmoid", "moe_renormalize": true, "routed_scaling_factor": 2.446,
              "use_grouped_topk": true, "num_expert_group": 1, "topk_group": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1,
              "num_nextn_predict_layers": 0, "tie_word_embeddings": false,
              "bos_token_id": 163584, "eos_token_id": 163586, "pad_token_id": 163839, "use_cache": true, "initializer_range": 0.02
            }
            """;
}
