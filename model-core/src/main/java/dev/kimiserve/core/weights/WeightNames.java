package dev.kimiserve.core.weights;

import java.util.List;

/**
 * The one table of checkpoint tensor names. Each logical weight lists the names it may be stored under, the
 * released checkpoint's spelling first; {@code {L}} is the layer prefix {@code model.layers.N.}, {@code {E}} an expert
 * number. Fused tensors that transformers' native port uses (one depthwise conv over q|k|v, experts stacked as
 * {@code gate_up_proj}/{@code down_proj}) are listed separately: the loader slices them.
 */
public final class WeightNames {
    private WeightNames() {
    }

    public static final List<String> EMBED = List.of("model.embed_tokens.weight");
    public static final List<String> FINAL_NORM = List.of("model.norm.weight");
    public static final List<String> LM_HEAD = List.of("lm_head.weight");

    public static final List<String> INPUT_NORM = List.of("{L}input_layernorm.weight");
    public static final List<String> POST_ATTN_NORM = List.of("{L}post_attention_layernorm.weight");

    // ---- KDA mixer ----
    public static final List<String> KDA_Q = List.of("{L}self_attn.q_proj.weight");
    public static final List<String> KDA_K = List.of("{L}self_attn.k_proj.weight");
    public static final List<String> KDA_V = List.of("{L}self_attn.v_proj.weight");
    public static final List<String> KDA_Q_CONV = List.of("{L}self_attn.q_conv1d.weight");
    public static final List<String> KDA_K_CONV = List.of("{L}self_attn.k_conv1d.weight");
    public static final List<String> KDA_V_CONV = List.of("{L}self_attn.v_conv1d.weight");
    /** [3C, 1, kernel]: q channels, then k, then v. */
    public static final List<String> KDA_QKV_CONV_FUSED = List.of("{L}self_attn.conv1d.weight");
    public static final List<String> KDA_F_A = List.of("{L}self_attn.f_a_proj.weight", "{L}self_attn.forget_gate_down.weight");
    public static final List<String> KDA_F_B = List.of("{L}self_attn.f_b_proj.weight", "{L}self_attn.forget_gate_up.weight");
    public static final List<String> KDA_A_LOG = List.of("{L}self_attn.A_log");
    public static final List<String> KDA_DT_BIAS = List.of("{L}self_attn.dt_bias");
    public static final List<String> KDA_B = List.of("{L}self_attn.b_proj.weight", "{L}self_attn.beta_proj.weight");
    public static final List<String> KDA_G_A = List.of("{L}self_attn.g_a_proj.weight", "{L}self_attn.output_gate_down.weight");
    public static final List<String> KDA_G_B = List.of("{L}self_attn.g_b_proj.weight", "{L}self_attn.output_gate_up.weight");
    public static final List<String> KDA_O_NORM = List.of("{L}self_attn.o_norm.weight");
    public static final List<String> KDA_O = List.of("{L}self_attn.o_proj.weight");

    // ---- MLA mixer ----
    public static final List<String> MLA_Q = List.of("{L}self_attn.q_proj.weight");
    public static final List<String> MLA_Q_A = List.of("{L}self_attn.q_a_proj.weight");
    public static final List<String> MLA_Q_A_NORM = List.of("{L}self_attn.q_a_layernorm.weight");
    public static final List<String> MLA_Q_B = List.of("{L}self_attn.q_b_proj.weight");
    public static final List<String> MLA_KV_A = List.of("{L}self_attn.kv_a_proj_with_mqa.weight");
    public static final List<String> MLA_KV_A_NORM = List.of("{L}self_attn.kv_a_layernorm.weight");
    public static final List<String> MLA_KV_B = List.of("{L}self_attn.kv_b_proj.weight");
    public static final List<String> MLA_O = List.of("{L}self_attn.o_proj.weight");

    // ---- dense MLP (released: mlp.*; transformers 5 saves layer 0 as block_sparse_moe.*) ----
    public static final List<String> DENSE_GATE = List.of("{L}mlp.gate_proj.weight", "{L}block_sparse_moe.gate_proj.weight");
    public static final List<String> DENSE_UP = List.of("{L}mlp.up_proj.weight", "{L}block_sparse_moe.up_proj.weight");
    public static final List<String> DENSE_DOWN = List.of("{L}mlp.down_proj.weight", "{L}block_sparse_moe.down_proj.weight");

    // ---- MoE ----
    public static final List<String> MOE_ROUTER = List.of("{L}block_sparse_moe.gate.weight", "{L}mlp.gate.weight");
    public static final List<String> MOE_BIAS = List.of("{L}block_sparse_moe.gate.e_score_correction_bias", "{L}mlp.gate.e_score_correction_bias");
    public static final List<String> EXPERT_GATE = List.of("{L}block_sparse_moe.experts.{E}.w1.weight", "{L}mlp.experts.{E}.gate_proj.weight");
    public static final List<String> EXPERT_UP = List.of("{L}block_sparse_moe.experts.{E}.w3.weight", "{L}mlp.experts.{E}.up_proj.weight");
    public static final List<String> EXPERT_DOWN = List.of("{L}block_sparse_moe.experts.{E}.w2.weight", "{L}mlp.experts.{E}.down_proj.weight");
    /** [E, 2I, D]: per expert I gate rows then I up rows. */
    public static final List<String> EXPERTS_GATE_UP_FUSED = List.of("{L}block_sparse_moe.experts.gate_up_proj", "{L}mlp.experts.gate_up_proj");
    /** [E, D, I]. */
    public static final List<String> EXPERTS_DOWN_FUSED = List.of("{L}block_sparse_moe.experts.down_proj", "{L}mlp.experts.down_proj");
    public static final List<String> SHARED_GATE = List.of("{L}block_sparse_moe.shared_experts.gate_proj.weight", "{L}mlp.shared_experts.gate_proj.weight");
    public static final List<String> SHARED_UP = List.of("{L}block_sparse_moe.shared_experts.up_proj.weight", "{L}mlp.shared_experts.up_proj.weight");
    public static final List<String> SHARED_DOWN = List.of("{L}block_sparse_moe.shared_experts.down_proj.weight", "{L}mlp.shared_experts.down_proj.weight");

    public static String layerPrefix(int layer) {
        return "model.layers." + layer + ".";
    }

    /** Fills {@code {L}} and {@code {E}} in a name pattern. */
    public static String resolve(String pattern, int layer, int expert) {
        return pattern.replace("{L}", layerPrefix(layer)).replace("{E}", Integer.toString(expert));
    }
}
