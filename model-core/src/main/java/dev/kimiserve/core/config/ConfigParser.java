package dev.kimiserve.core.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads a Kimi Linear {@code config.json} in either spelling into one {@link KimiLinearConfig}:
 * <ul>
 *   <li>the released checkpoint's: {@code linear_attn_config} with 1-indexed {@code kda_layers} /
 *       {@code full_attn_layers}, {@code num_heads}, {@code head_dim}, {@code short_conv_kernel_size};
 *       {@code first_k_dense_replace}, {@code moe_layer_freq}, {@code moe_router_activation_func};</li>
 *   <li>transformers 5's: {@code layer_types}, {@code mlp_layer_types}, {@code linear_num_heads},
 *       {@code linear_head_dim}, {@code linear_conv_kernel_dim}; expert keys under either their own names or the
 *       transformers attribute aliases ({@code num_local_experts}, {@code num_experts_per_tok}, {@code n_group}, ...).</li>
 * </ul>
 * When both spellings of one fact are present they must agree. Every problem is a {@link ModelFormatException} naming
 * the file and the field.
 */
public final class ConfigParser {
    public static final String FILE_NAME = "config.json";
    public static final String MODEL_TYPE = "kimi_linear";

    private final Path file;
    private final JsonNode root;

    private ConfigParser(Path file, JsonNode root) {
        this.file = file;
        this.root = root;
    }

    /** Parses {@code config.json} in a model directory, or the file itself when given a file. */
    public static KimiLinearConfig parse(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve(FILE_NAME) : path;
        if (!Files.isRegularFile(file)) {
            throw ModelFormatException.of(file, "file not found");
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw ModelFormatException.of(file, "not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw ModelFormatException.of(file, "top level is not a JSON object");
        }
        return new ConfigParser(file, root).parse();
    }

    private KimiLinearConfig parse() {
        String modelType = text("model_type", null);
        if (modelType == null) {
            throw error("model_type", "is missing (expected \"" + MODEL_TYPE + "\")");
        }
        if (!modelType.equals(MODEL_TYPE)) {
            throw error("model_type", "is \"" + modelType + "\"; only \"" + MODEL_TYPE + "\" is supported");
        }
        rejectUnsupportedFeatures();
        int vocab = requiredPositiveInt("vocab_size");
        int hidden = requiredPositiveInt("hidden_size");
        int layers = requiredPositiveInt("num_hidden_layers");
        float eps = (float) number("rms_norm_eps", 1e-5);
        if (!(eps > 0)) {
            throw error("rms_norm_eps", "must be > 0, got " + eps);
        }
        List<LayerKind> kinds = layerKinds(layers);
        List<MlpKind> mlps = mlpKinds(layers);
        KdaConfig kda = kinds.contains(LayerKind.KDA) ? kdaConfig() : null;
        MlaConfig mla = kinds.contains(LayerKind.MLA) ? mlaConfig() : null;
        MoeConfig moe = mlps.contains(MlpKind.MOE) ? moeConfig() : null;
        int intermediate = mlps.contains(MlpKind.DENSE) ? requiredPositiveInt("intermediate_size") : optionalInt("intermediate_size", 0);
        boolean tie = bool("tie_word_embeddings", false);
        int bos = optionalInt("bos_token_id", -1);
        int pad = optionalInt("pad_token_id", -1);
        List<Integer> eos = eosTokenIds();
        long maxContext = root.has("model_max_length") ? longValue("model_max_length")
                : root.has("max_position_embeddings") ? longValue("max_position_embeddings") : 1_048_576L;
        for (int id : eos) {
            if (id < 0 || id >= vocab) {
                throw error("eos_token_id", "id " + id + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        return new KimiLinearConfig(vocab, hidden, layers, kinds, mlps, intermediate, eps, kda, mla, moe, tie, bos, eos, pad, maxContext);
    }

    private void rejectUnsupportedFeatures() {
        String act = text("hidden_act", "silu");
        if (!act.equals("silu")) {
            throw error("hidden_act", "is \"" + act + "\"; Kimi Linear uses \"silu\"");
        }
        if (bool("mla_use_output_gate", false)) {
            throw error("mla_use_output_gate", "is true: the MLA output gate (Kimi K3) is not supported");
        }
        if (optionalInt("attn_res_block_size", 0) != 0) {
            throw error("attn_res_block_size", "is set: attention residuals (Kimi K3) are not supported");
        }
        if (root.hasNonNull("forget_gate_lower_bound")) {
            throw error("forget_gate_lower_bound", "is set: the lower-bounded KDA gate (Kimi K3) is not supported");
        }
        if (bool("use_full_rank_output_gate", false)) {
            throw error("use_full_rank_output_gate", "is true: only the low-rank KDA output gate is supported");
        }
        String routerAct = text("moe_router_activation_func", "sigmoid");
        if (!routerAct.equals("sigmoid")) {
            throw error("moe_router_activation_func", "is \"" + routerAct + "\"; only \"sigmoid\" is supported");
        }
        if (root.hasNonNull("num_key_value_heads") && root.hasNonNull("num_attention_heads")
                && root.get("num_key_value_heads").asInt() != root.get("num_attention_heads").asInt()) {
            throw error("num_key_value_heads", "must equal num_attention_heads (MLA expands to one key/value head per query head)");
        }
    }

    // ---- layer maps ----

    private List<LayerKind> layerKinds(int layers) {
        List<LayerKind> fromTypes = null;
        if (root.hasNonNull("layer_types")) {
            List<String> types = stringList("layer_types");
            if (types.size() != layers) {
                throw error("layer_types", "lists " + types.size() + " layers but num_hidden_layers is " + layers);
            }
            fromTypes = new ArrayList<>();
            for (int i = 0; i < types.size(); i++) {
                fromTypes.add(switch (types.get(i)) {
                    case "linear_attention", "kda" -> LayerKind.KDA;
                    case "full_attention", "mla" -> LayerKind.MLA;
                    default -> throw error("layer_types[" + i + "]", "unknown layer type \"" + types.get(i) + "\"");
                });
            }
        }
        List<LayerKind> fromLinear = null;
        JsonNode lac = root.get("linear_attn_config");
        if (lac != null && !lac.isNull() && (lac.has("kda_layers") || lac.has("full_attn_layers"))) {
            fromLinear = layerKindsFromOneIndexedLists(lac, layers);
        }
        if (fromTypes != null && fromLinear != null && !fromTypes.equals(fromLinear)) {
            throw error("layer_types", "disagrees with linear_attn_config.kda_layers / full_attn_layers");
        }
        if (fromTypes != null) {
            return fromTypes;
        }
        if (fromLinear != null) {
            return fromLinear;
        }
        throw error("layer_types", "is missing (and there is no linear_attn_config.kda_layers / full_attn_layers)");
    }

    private List<LayerKind> layerKindsFromOneIndexedLists(JsonNode lac, int layers) {
        LayerKind[] kinds = new LayerKind[layers];
        assignOneIndexed(lac, "kda_layers", LayerKind.KDA, kinds);
        assignOneIndexed(lac, "full_attn_layers", LayerKind.MLA, kinds);
        for (int i = 0; i < layers; i++) {
            if (kinds[i] == null) {
                throw error("linear_attn_config.kda_layers", "layer " + (i + 1) + " (1-indexed) is in neither kda_layers nor full_attn_layers");
            }
        }
        return Arrays.asList(kinds);
    }

    private void assignOneIndexed(JsonNode lac, String key, LayerKind kind, LayerKind[] kinds) {
        String field = "linear_attn_config." + key;
        JsonNode list = lac.get(key);
        if (list == null || !list.isArray()) {
            throw error(field, "is missing or not a list of 1-indexed layer numbers");
        }
        for (JsonNode n : list) {
            if (!n.isIntegralNumber()) {
                throw error(field, "entry " + n + " is not an integer");
            }
            int oneBased = n.asInt();
            if (oneBased < 1 || oneBased > kinds.length) {
                throw error(field, "layer " + oneBased + " is outside 1.." + kinds.length + " (these lists are 1-indexed)");
            }
            if (kinds[oneBased - 1] != null) {
                throw error(field, "layer " + oneBased + " is listed twice (or in both kda_layers and full_attn_layers)");
            }
            kinds[oneBased - 1] = kind;
        }
    }

    private List<MlpKind> mlpKinds(int layers) {
        List<MlpKind> fromTypes = null;
        if (root.hasNonNull("mlp_layer_types")) {
            List<String> types = stringList("mlp_layer_types");
            if (types.size() != layers) {
                throw error("mlp_layer_types", "lists " + types.size() + " layers but num_hidden_layers is " + layers);
            }
            fromTypes = new ArrayList<>();
            for (int i = 0; i < types.size(); i++) {
                fromTypes.add(switch (types.get(i)) {
                    case "dense" -> MlpKind.DENSE;
                    case "sparse", "moe" -> MlpKind.MOE;
                    default -> throw error("mlp_layer_types[" + i + "]", "unknown MLP type \"" + types.get(i) + "\"");
                });
            }
        }
        List<MlpKind> fromDense = null;
        if (root.hasNonNull("first_k_dense_replace")) {
            int firstDense = optionalInt("first_k_dense_replace", 1);
            int freq = optionalInt("moe_layer_freq", 1);
            if (firstDense < 0) {
                throw error("first_k_dense_replace", "must be >= 0, got " + firstDense);
            }
            if (freq <= 0) {
                throw error("moe_layer_freq", "must be >= 1, got " + freq);
            }
            fromDense = new ArrayList<>();
            for (int i = 0; i < layers; i++) {
                fromDense.add(i >= firstDense && i % freq == 0 ? MlpKind.MOE : MlpKind.DENSE);
            }
        }
        if (fromTypes != null && fromDense != null && !fromTypes.equals(fromDense)) {
            throw error("mlp_layer_types", "disagrees with first_k_dense_replace / moe_layer_freq");
        }
        if (fromTypes != null) {
            return fromTypes;
        }
        if (fromDense != null) {
            return fromDense;
        }
        // transformers' default: first_k_dense_replace = 1
        List<MlpKind> kinds = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            kinds.add(i < 1 ? MlpKind.DENSE : MlpKind.MOE);
        }
        return kinds;
    }

    // ---- per-layer-type shapes ----

    private KdaConfig kdaConfig() {
        JsonNode lac = root.get("linear_attn_config");
        int heads = agreeing("linear_num_heads", "linear_num_key_heads", lac, "num_heads");
        int headDim = agreeing("linear_head_dim", "linear_key_head_dim", lac, "head_dim");
        int conv = agreeing("linear_conv_kernel_dim", null, lac, "short_conv_kernel_size", 4);
        return new KdaConfig(heads, headDim, conv);
    }

    private int agreeing(String flatKey, String flatAlias, JsonNode lac, String nestedKey) {
        return agreeing(flatKey, flatAlias, lac, nestedKey, null);
    }

    /** A KDA shape given flat (transformers) and/or nested in linear_attn_config (released); both must agree. */
    private int agreeing(String flatKey, String flatAlias, JsonNode lac, String nestedKey, Integer fallback) {
        Integer flat = null;
        String flatName = flatKey;
        if (root.hasNonNull(flatKey)) {
            flat = positiveInt(flatKey);
        } else if (flatAlias != null && root.hasNonNull(flatAlias)) {
            flat = positiveInt(flatAlias);
            flatName = flatAlias;
        }
        Integer nested = null;
        String nestedName = "linear_attn_config." + nestedKey;
        if (lac != null && lac.hasNonNull(nestedKey)) {
            JsonNode n = lac.get(nestedKey);
            if (!n.isIntegralNumber() || n.asInt() <= 0) {
                throw error(nestedName, "must be a positive integer, got " + n);
            }
            nested = n.asInt();
        }
        if (flat != null && nested != null && !flat.equals(nested)) {
            throw error(flatName, "is " + flat + " but " + nestedName + " is " + nested);
        }
        if (flat != null) {
            return flat;
        }
        if (nested != null) {
            return nested;
        }
        if (fallback != null) {
            return fallback;
        }
        throw error(flatKey, "is missing (nor is " + nestedName + " given) but the model has KDA layers");
    }

    private MlaConfig mlaConfig() {
        int heads = requiredPositiveInt("num_attention_heads");
        int nope = requiredPositiveInt("qk_nope_head_dim");
        int rope = requiredNonNegativeInt("qk_rope_head_dim");
        int v = requiredPositiveInt("v_head_dim");
        int kvLora = requiredPositiveInt("kv_lora_rank");
        int qLora = root.hasNonNull("q_lora_rank") ? positiveInt("q_lora_rank") : 0;
        float kvEps = (float) number("kv_a_layernorm_eps", 1e-6);
        return new MlaConfig(heads, nope, rope, v, kvLora, qLora, kvEps);
    }

    private MoeConfig moeConfig() {
        int experts = aliasedPositiveInt("num_experts", "num_local_experts", "n_routed_experts");
        int topk = aliasedPositiveInt("num_experts_per_token", "num_experts_per_tok", null);
        int width = requiredPositiveInt("moe_intermediate_size");
        int shared = root.hasNonNull("num_shared_experts") ? nonNegativeInt("num_shared_experts")
                : root.hasNonNull("n_shared_experts") ? nonNegativeInt("n_shared_experts") : 1;
        boolean grouped = bool("use_grouped_topk", true);
        int groups = root.hasNonNull("num_expert_group") ? positiveInt("num_expert_group")
                : root.hasNonNull("n_group") ? positiveInt("n_group") : 1;
        int topkGroup = optionalInt("topk_group", 1);
        if (!grouped) {
            groups = 1;
            topkGroup = 1;
        }
        boolean renorm = root.has("moe_renormalize") ? bool("moe_renormalize", true) : bool("norm_topk_prob", true);
        if (!root.hasNonNull("routed_scaling_factor")) {
            throw error("routed_scaling_factor", "is missing but the model has MoE layers");
        }
        float scaling = (float) number("routed_scaling_factor", 1.0);
        boolean biased = bool("router_weight_uses_score_correction_bias", false);
        if (topk > experts) {
            throw error("num_experts_per_token", topk + " is more than num_experts " + experts);
        }
        if (experts % groups != 0) {
            throw error("num_expert_group", groups + " does not divide num_experts " + experts);
        }
        if (topkGroup > groups) {
            throw error("topk_group", topkGroup + " is more than num_expert_group " + groups);
        }
        if (topk > topkGroup * (experts / groups)) {
            throw error("num_experts_per_token", topk + " experts cannot be chosen from " + topkGroup + " groups of " + experts / groups);
        }
        if (groups > 1 && experts / groups < 2) {
            throw error("num_expert_group", "groups need at least 2 experts each (group score = sum of the top 2)");
        }
        return new MoeConfig(experts, topk, width, shared, groups, topkGroup, renorm, scaling, biased);
    }

    private List<Integer> eosTokenIds() {
        JsonNode n = root.get("eos_token_id");
        if (n == null || n.isNull()) {
            return List.of();
        }
        List<Integer> ids = new ArrayList<>();
        if (n.isArray()) {
            for (JsonNode e : n) {
                if (!e.isIntegralNumber()) {
                    throw error("eos_token_id", "entry " + e + " is not an integer");
                }
                ids.add(e.asInt());
            }
        } else if (n.isIntegralNumber()) {
            ids.add(n.asInt());
        } else {
            throw error("eos_token_id", "must be an integer or a list of integers, got " + n);
        }
        return ids;
    }

    // ---- typed field access ----

    private ModelFormatException error(String field, String what) {
        return ModelFormatException.of(file, "field '" + field + "' " + what);
    }

    private int aliasedPositiveInt(String key, String alias1, String alias2) {
        if (root.hasNonNull(key)) {
            return positiveInt(key);
        }
        if (alias1 != null && root.hasNonNull(alias1)) {
            return positiveInt(alias1);
        }
        if (alias2 != null && root.hasNonNull(alias2)) {
            return positiveInt(alias2);
        }
        throw error(key, "is missing but the model has MoE layers");
    }

    private int requiredPositiveInt(String key) {
        if (!root.hasNonNull(key)) {
            throw error(key, "is missing");
        }
        return positiveInt(key);
    }

    private int requiredNonNegativeInt(String key) {
        if (!root.hasNonNull(key)) {
            throw error(key, "is missing");
        }
        return nonNegativeInt(key);
    }

    private int positiveInt(String key) {
        int v = intValue(key);
        if (v <= 0) {
            throw error(key, "must be > 0, got " + v);
        }
        return v;
    }

    private int nonNegativeInt(String key) {
        int v = intValue(key);
        if (v < 0) {
            throw error(key, "must be >= 0, got " + v);
        }
        return v;
    }

    private int optionalInt(String key, int fallback) {
        return root.hasNonNull(key) ? intValue(key) : fallback;
    }

    private int intValue(String key) {
        JsonNode n = root.get(key);
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw error(key, "must be an integer, got " + n);
        }
        return n.asInt();
    }

    private long longValue(String key) {
        JsonNode n = root.get(key);
        if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() <= 0) {
            throw error(key, "must be a positive integer, got " + n);
        }
        return n.asLong();
    }

    private double number(String key, double fallback) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isNumber()) {
            throw error(key, "must be a number, got " + n);
        }
        return n.asDouble();
    }

    private boolean bool(String key, boolean fallback) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw error(key, "must be true or false, got " + n);
        }
        return n.asBoolean();
    }

    private String text(String key, String fallback) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return fallback;
        }
        if (!n.isTextual()) {
            throw error(key, "must be a string, got " + n);
        }
        return n.asText();
    }

    private List<String> stringList(String key) {
        JsonNode n = root.get(key);
        if (!n.isArray()) {
            throw error(key, "must be a list of strings, got " + n);
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : n) {
            if (!e.isTextual()) {
                throw error(key, "entry " + e + " is not a string");
            }
            out.add(e.asText());
        }
        return out;
    }
}
