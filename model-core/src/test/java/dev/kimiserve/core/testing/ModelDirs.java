package dev.kimiserve.core.testing;

import dev.kimiserve.core.safetensors.Checkpoint;
import dev.kimiserve.core.safetensors.SafetensorsWriter;
import dev.kimiserve.core.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Predicate;

/** Builds variants of a model directory for loader tests. */
public final class ModelDirs {
    private ModelDirs() {
    }

    /** Released-checkpoint spelling of tiny-a's config.json (linear_attn_config, first_k_dense_replace, ...). */
    public static final String TINY_A_RELEASED_CONFIG = """
            {
              "architectures": ["KimiLinearForCausalLM"], "model_type": "kimi_linear",
              "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
              "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 72,
              "kv_lora_rank": 32, "q_lora_rank": null, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
              "mla_use_nope": true, "rope_theta": 10000.0, "rope_scaling": null, "hidden_act": "silu",
              "num_experts": 8, "num_experts_per_token": 2, "num_shared_experts": 1,
              "moe_router_activation_func": "sigmoid", "moe_renormalize": true, "routed_scaling_factor": 2.446,
              "use_grouped_topk": true, "num_expert_group": 1, "topk_group": 1,
              "first_k_dense_replace": 1, "moe_layer_freq": 1, "num_nextn_predict_layers": 0,
              "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
              "model_max_length": 1048576,
              "linear_attn_config": {"kda_layers": [1, 2, 3], "full_attn_layers": [4], "num_heads": 2, "head_dim": 32,
                                     "short_conv_kernel_size": 4}
            }
            """;

    /** A copy of {@code source} with another config.json. */
    public static Path withConfig(Path source, Path target, String configJson) throws IOException {
        Files.createDirectories(target);
        Files.copy(source.resolve("model.safetensors"), target.resolve("model.safetensors"));
        Files.writeString(target.resolve("config.json"), configJson);
        return target;
    }

    /** A copy of {@code source} keeping only tensors {@code keep} accepts, plus extra F32 tensors. */
    public static Path withTensors(Path source, Path target, Predicate<String> keep, String... extraNames) throws IOException {
        Files.createDirectories(target);
        Files.copy(source.resolve("config.json"), target.resolve("config.json"));
        SafetensorsWriter w = new SafetensorsWriter();
        try (Checkpoint c = Checkpoint.open(source)) {
            for (String name : c.names()) {
                if (!keep.test(name)) {
                    continue;
                }
                Tensor t = c.tensor(name);
                byte[] bytes = t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                w.add(name, t.dtype(), t.shape(), out -> SafetensorsWriter.writeAll(out, ByteBuffer.wrap(bytes)));
            }
        }
        for (String extra : extraNames) {
            w.addF32(extra, new long[]{2}, new float[]{1, 2});
        }
        w.write(target.resolve("model.safetensors"));
        return target;
    }
}
