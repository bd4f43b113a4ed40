package dev.kimiserve.core.config;

import java.util.List;

/**
 * One validated, normalised form of a Kimi Linear {@code config.json}, whichever spelling it came in
 * (see {@link ConfigParser}). Layer indices are 0-based.
 *
 * @param kda           KDA shapes, null when no layer is KDA
 * @param mla           MLA shapes, null when no layer is MLA
 * @param moe           routed-expert settings, null when no layer is MoE
 * @param eosTokenIds   ids that end generation (config {@code eos_token_id}, int or list)
 * @param maxContext    {@code model_max_length}: the longest context the model is served with
 */
public record KimiLinearConfig(int vocabSize, int hiddenSize, int numLayers, List<LayerKind> layerKinds,
                               List<MlpKind> mlpKinds, int intermediateSize, float rmsNormEps, KdaConfig kda,
                               MlaConfig mla, MoeConfig moe, boolean tieWordEmbeddings, int bosTokenId,
                               List<Integer> eosTokenIds, int padTokenId, long maxContext) {
    public KimiLinearConfig {
        layerKinds = List.copyOf(layerKinds);
        mlpKinds = List.copyOf(mlpKinds);
        eosTokenIds = List.copyOf(eosTokenIds);
        if (vocabSize <= 0 || hiddenSize <= 0 || numLayers <= 0) {
            throw new IllegalArgumentException("vocab, hidden and layer counts must be positive");
        }
        if (layerKinds.size() != numLayers || mlpKinds.size() != numLayers) {
            throw new IllegalArgumentException("layer kinds must list " + numLayers + " layers");
        }
        if (layerKinds.contains(LayerKind.KDA) && kda == null) {
            throw new IllegalArgumentException("KDA layers need KDA shapes");
        }
        if (layerKinds.contains(LayerKind.MLA) && mla == null) {
            throw new IllegalArgumentException("MLA layers need MLA shapes");
        }
        if (mlpKinds.contains(MlpKind.MOE) && moe == null) {
            throw new IllegalArgumentException("MoE layers need MoE settings");
        }
        if (mlpKinds.contains(MlpKind.DENSE) && intermediateSize <= 0) {
            throw new IllegalArgumentException("dense layers need intermediate_size > 0");
        }
        if (!(rmsNormEps > 0)) {
            throw new IllegalArgumentException("rms_norm_eps must be > 0");
        }
    }

    public LayerKind layerKind(int layer) {
        return layerKinds.get(layer);
    }

    public MlpKind mlpKind(int layer) {
        return mlpKinds.get(layer);
    }

    public int countLayers(LayerKind kind) {
        return (int) layerKinds.stream().filter(k -> k == kind).count();
    }

    public KimiLinearConfig withMoe(MoeConfig newMoe) {
        return new KimiLinearConfig(vocabSize, hiddenSize, numLayers, layerKinds, mlpKinds, intermediateSize, rmsNormEps, kda,
                mla, newMoe, tieWordEmbeddings, bosTokenId, eosTokenIds, padTokenId, maxContext);
    }

    /** The first {@code k} layers only (benchmarks of real layer shapes on small machines). */
    public KimiLinearConfig withFirstLayers(int k) {
        if (k <= 0 || k > numLayers) {
            throw new IllegalArgumentException("layers must be in 1.." + numLayers + ", got " + k);
        }
        List<LayerKind> kinds = layerKinds.subList(0, k);
        List<MlpKind> mlps = mlpKinds.subList(0, k);
        return new KimiLinearConfig(vocabSize, hiddenSize, k, kinds, mlps, intermediateSize, rmsNormEps,
                kinds.contains(LayerKind.KDA) ? kda : null, kinds.contains(LayerKind.MLA) ? mla : null,
                mlps.contains(MlpKind.MOE) ? moe : null, tieWordEmbeddings, bosTokenId, eosTokenIds, padTokenId, maxContext);
    }
}
