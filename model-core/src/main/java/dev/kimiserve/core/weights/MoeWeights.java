package dev.kimiserve.core.weights;

import dev.kimiserve.core.tensor.Tensor;
import java.util.List;

/**
 * A MoE block: sigmoid router with selection bias, routed experts and an optional shared expert.
 *
 * @param router         [E, D]
 * @param correctionBias [E] e_score_correction_bias (added for selection only, by default)
 * @param experts        E routed experts
 * @param shared         the shared expert(s) as one MLP of width num_shared * moe_intermediate, or null
 */
public record MoeWeights(Tensor router, float[] correctionBias, List<MlpWeights> experts, MlpWeights shared) {
    public MoeWeights {
        experts = List.copyOf(experts);
    }
}
