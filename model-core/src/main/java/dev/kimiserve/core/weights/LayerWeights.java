package dev.kimiserve.core.weights;

import dev.kimiserve.core.config.LayerKind;

/**
 * One decoder layer: pre-norms, exactly one mixer (kda or mla) and exactly one FFN (dense or moe).
 *
 * @param inputNorm    [D] input_layernorm
 * @param postAttnNorm [D] post_attention_layernorm
 */
public record LayerWeights(int index, LayerKind kind, float[] inputNorm, float[] postAttnNorm, KdaWeights kda,
                           MlaWeights mla, MlpWeights dense, MoeWeights moe) {
    public LayerWeights {
        if ((kda == null) == (mla == null) || (dense == null) == (moe == null)) {
            throw new IllegalArgumentException("layer " + index + " needs exactly one mixer and one FFN");
        }
    }
}
