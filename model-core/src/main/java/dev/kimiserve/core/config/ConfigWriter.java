package dev.kimiserve.core.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Writes a {@link KimiLinearConfig} as config.json in the released checkpoint's spelling (linear_attn_config with
 * 1-indexed layer lists), which both transformers and our parser read.
 */
public final class ConfigWriter {
    private ConfigWriter() {
    }

    public static String toJson(KimiLinearConfig c) {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode n = json.createObjectNode();
        n.putArray("architectures").add("KimiLinearForCausalLM");
        n.put("model_type", ConfigParser.MODEL_TYPE);
        n.put("dtype", "bfloat16");
        n.put("vocab_size", c.vocabSize());
        n.put("hidden_size", c.hiddenSize());
        n.put("num_hidden_layers", c.numLayers());
        n.put("intermediate_size", c.intermediateSize());
        n.put("hidden_act", "silu");
        n.put("rms_norm_eps", c.rmsNormEps());
        n.put("tie_word_embeddings", c.tieWordEmbeddings());
        n.put("bos_token_id", c.bosTokenId());
        if (c.eosTokenIds().size() == 1) {
            n.put("eos_token_id", c.eosTokenIds().get(0));
        } else {
            ArrayNode eos = n.putArray("eos_token_id");
            c.eosTokenIds().forEach(eos::add);
        }
        n.put("pad_token_id", c.padTokenId());
        n.put("model_max_length", c.maxContext());
        if (c.mla() != null) {
            MlaConfig m = c.mla();
            n.put("num_attention_heads", m.numHeads());
            n.put("num_key_value_heads", m.numHeads());
            if (m.qLoraRank() == 0) {
                n.putNull("q_lora_rank");
            } else {
                n.put("q_lora_rank", m.qLoraRank());
            }
            n.put("kv_lora_rank", m.kvLoraRank());
            n.put("qk_nope_head_dim", m.qkNopeHeadDim());
            n.put("qk_rope_head_dim", m.qkRopeHeadDim());
            n.put("v_head_dim", m.vHeadDim());
            n.put("mla_use_nope", true);
        }
        ObjectNode lac = n.putObject("linear_attn_config");
        ArrayNode kda = lac.putArray("kda_layers");
        ArrayNode full = lac.putArray("full_attn_layers");
        for (int i = 0; i < c.numLayers(); i++) {
            (c.layerKind(i) == LayerKind.KDA ? kda : full).add(i + 1);
        }
        if (c.kda() != null) {
            lac.put("num_heads", c.kda().numHeads());
            lac.put("head_dim", c.kda().headDim());
            lac.put("short_conv_kernel_size", c.kda().convKernel());
        }
        if (c.moe() != null) {
            MoeConfig m = c.moe();
            n.put("num_experts", m.numExperts());
            n.put("num_experts_per_token", m.expertsPerToken());
            n.put("moe_intermediate_size", m.intermediateSize());
            n.put("num_shared_experts", m.numSharedExperts());
            n.put("moe_router_activation_func", "sigmoid");
            n.put("moe_renormalize", m.renormalize());
            n.put("routed_scaling_factor", m.routedScalingFactor());
            n.put("use_grouped_topk", true);
            n.put("num_expert_group", m.numExpertGroups());
            n.put("topk_group", m.topkGroups());
        }
        ArrayNode mlp = n.putArray("mlp_layer_types");
        for (int i = 0; i < c.numLayers(); i++) {
            mlp.add(c.mlpKind(i) == MlpKind.DENSE ? "dense" : "sparse");
        }
        try {
            return json.writeValueAsString(n) + "\n";
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
