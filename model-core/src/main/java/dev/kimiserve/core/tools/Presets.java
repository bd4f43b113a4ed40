package dev.kimiserve.core.tools;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.config.MoeConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** Named model shapes for random checkpoints ({@code kimi make-model --preset NAME}). */
public final class Presets {
    private Presets() {
    }

    public static final Map<String, String> DESCRIPTIONS = new TreeMap<>(Map.of(
            "tiny", "the shapes of fixtures/tiny-a: hidden 64, 4 layers (KDA,KDA,KDA,MLA), 8 experts top-2, vocab 512",
            "small", "hidden 1024, 8 layers 3:1 KDA:MLA, 16 KDA heads x 64, 8 MLA heads, kv_lora 256, 64 experts top-4 + 1 shared (256), dense layer 0 (2816), vocab 32000",
            "kimi-linear-48b", "the real Kimi-Linear-48B-A3B shapes (27 layers, 256 experts top-8); use --layers K on small machines",
            "default", "the bundled default served by ./kimi up: the real Kimi vocabulary (163840) and tokenizer, hidden 256, 4 layers (KDA,KDA,KDA,MLA), 8 experts top-2"));

    /** Presets whose vocabulary is the Kimi tokenizer's, so the model directory gets the tokenizer files too. */
    public static boolean usesKimiTokenizer(String name) {
        return name.equals("default") || name.equals("kimi-linear-48b");
    }

    public static KimiLinearConfig get(String name) {
        return switch (name) {
            case "tiny" -> new KimiLinearConfig(512, 64, 4, pattern(4, 4), mlps(4, 1), 128, 1e-5f,
                    new KdaConfig(2, 32, 4), new MlaConfig(2, 16, 8, 16, 32, 0, 1e-6f),
                    new MoeConfig(8, 2, 32, 1, 1, 1, true, 2.446f, false), false, 1, List.of(2), 0, 1_048_576L);
            case "small" -> new KimiLinearConfig(32000, 1024, 8, pattern(8, 4), mlps(8, 1), 2816, 1e-5f,
                    new KdaConfig(16, 64, 4), new MlaConfig(8, 64, 32, 64, 256, 0, 1e-6f),
                    new MoeConfig(64, 4, 256, 1, 1, 1, true, 2.446f, false), false, 1, List.of(2), 0, 1_048_576L);
            case "kimi-linear-48b" -> {
                List<LayerKind> kinds = new ArrayList<>();
                for (int i = 0; i < 27; i++) {
                    kinds.add(List.of(3, 7, 11, 15, 19, 23, 26).contains(i) ? LayerKind.MLA : LayerKind.KDA);
                }
                yield new KimiLinearConfig(163840, 2304, 27, kinds, mlps(27, 1), 9216, 1e-5f,
                        new KdaConfig(32, 128, 4), new MlaConfig(32, 128, 64, 128, 512, 0, 1e-6f),
                        new MoeConfig(256, 8, 1024, 1, 1, 1, true, 2.446f, false), false, 163584, List.of(163586), 163839, 1_048_576L);
            }
            case "default" -> new KimiLinearConfig(163840, 256, 4, pattern(4, 4), mlps(4, 1), 512, 1e-5f,
                    new KdaConfig(4, 64, 4), new MlaConfig(4, 64, 32, 64, 128, 0, 1e-6f),
                    new MoeConfig(8, 2, 256, 1, 1, 1, true, 2.446f, false), false, 163584, List.of(163586), 163839, 1_048_576L);
            default -> throw new IllegalArgumentException("unknown preset '" + name + "' (choose one of " + DESCRIPTIONS.keySet() + ")");
        };
    }

    /** Every {@code period}-th layer (1-indexed) is MLA: the paper's 3:1 pattern for period 4. */
    static List<LayerKind> pattern(int layers, int period) {
        List<LayerKind> kinds = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            kinds.add((i + 1) % period == 0 ? LayerKind.MLA : LayerKind.KDA);
        }
        return kinds;
    }

    static List<MlpKind> mlps(int layers, int firstDense) {
        List<MlpKind> kinds = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            kinds.add(i < firstDense ? MlpKind.DENSE : MlpKind.MOE);
        }
        return kinds;
    }
}
