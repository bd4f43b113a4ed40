package dev.kimiserve.core.testing;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.config.MoeConfig;
import java.util.List;

/** Model shapes the backend tests share (write them with RandomCheckpoint). */
public final class TestModels {
    private TestModels() {
    }

    /**
     * Awkward shapes: head dims that are not multiples of a vector block (KDA 40, MLA q 24 / v 20), q LoRA, grouped
     * routing (4 groups, top 2), dense and MoE layers mixed, layers [KDA, MLA, KDA, KDA, MLA].
     */
    public static KimiLinearConfig awkward() {
        return new KimiLinearConfig(300, 96, 5,
                List.of(LayerKind.KDA, LayerKind.MLA, LayerKind.KDA, LayerKind.KDA, LayerKind.MLA),
                List.of(MlpKind.DENSE, MlpKind.MOE, MlpKind.MOE, MlpKind.DENSE, MlpKind.MOE), 136, 1e-5f,
                new KdaConfig(3, 40, 4), new MlaConfig(3, 24, 8, 20, 48, 40, 1e-6f),
                new MoeConfig(8, 3, 56, 1, 4, 2, true, 2.0f, false), false, 1, List.of(2), 0, 1_048_576L);
    }
}
