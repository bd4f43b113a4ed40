package dev.kimiserve.core.weights;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.tensor.Tensor;
import java.util.List;

/**
 * Every weight of a Kimi Linear model, as views into the memory-mapped checkpoint (small vectors copied to fp32).
 *
 * @param embed     [vocab, D]
 * @param finalNorm [D]
 * @param lmHead    [vocab, D] (the embedding itself when tie_word_embeddings)
 */
public record ModelWeights(KimiLinearConfig config, Tensor embed, float[] finalNorm, Tensor lmHead, List<LayerWeights> layers) {
    public ModelWeights {
        layers = List.copyOf(layers);
    }

    public LayerWeights layer(int i) {
        return layers.get(i);
    }
}
