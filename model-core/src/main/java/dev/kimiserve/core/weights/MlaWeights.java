package dev.kimiserve.core.weights;

import dev.kimiserve.core.tensor.Tensor;

/**
 * Weights of one MLA mixer. H heads, Q = qk_nope + qk_rope, N = qk_nope, Vh = v_head_dim, L = kv_lora_rank,
 * P = qk_rope, D = hidden size.
 *
 * @param qProj   [H*Q, D], or null when queries are low-rank (then qA, qANorm, qB are set)
 * @param qA      [qLoraRank, D] or null
 * @param qANorm  [qLoraRank] or null
 * @param qB      [H*Q, qLoraRank] or null
 * @param kvA     [L+P, D] (kv_a_proj_with_mqa: latent then shared k_pe)
 * @param kvANorm [L]
 * @param kvB     [H*(N+Vh), L]: per head N rows of k_nope then Vh rows of v
 * @param oProj   [D, H*Vh]
 */
public record MlaWeights(Tensor qProj, Tensor qA, float[] qANorm, Tensor qB, Tensor kvA, float[] kvANorm, Tensor kvB,
                         Tensor oProj) {
}
