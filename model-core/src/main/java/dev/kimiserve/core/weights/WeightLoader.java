package dev.kimiserve.core.weights;

import static dev.kimiserve.core.weights.WeightNames.*;

import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.config.MoeConfig;
import dev.kimiserve.core.safetensors.Checkpoint;
import dev.kimiserve.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Binds a checkpoint's tensors to {@link ModelWeights} through the {@link WeightNames} table, checking every shape
 * and dtype against the config. All problems are collected first, then reported together: every missing tensor
 * (with the names tried), every unexpected tensor, every wrong shape.
 */
public final class WeightLoader {
    private final Checkpoint ckpt;
    private final KimiLinearConfig cfg;
    private final Set<String> used = new LinkedHashSet<>();
    private final List<String> missing = new ArrayList<>();
    private final List<String> badShapes = new ArrayList<>();

    private WeightLoader(Checkpoint ckpt, KimiLinearConfig cfg) {
        this.ckpt = ckpt;
        this.cfg = cfg;
    }

    public static ModelWeights load(Checkpoint ckpt, KimiLinearConfig cfg) {
        return new WeightLoader(ckpt, cfg).loadAll();
    }

    private ModelWeights loadAll() {
        int d = cfg.hiddenSize();
        int v = cfg.vocabSize();
        Tensor embed = matrix(EMBED, -1, -1, v, d);
        float[] finalNorm = vector(FINAL_NORM, -1, d);
        Tensor lmHead = cfg.tieWordEmbeddings() && !anyExists(LM_HEAD, -1, -1) ? embed : matrix(LM_HEAD, -1, -1, v, d);
        List<LayerWeights> layers = new ArrayList<>();
        for (int i = 0; i < cfg.numLayers(); i++) {
            float[] inNorm = vector(INPUT_NORM, i, d);
            float[] postNorm = vector(POST_ATTN_NORM, i, d);
            KdaWeights kda = cfg.layerKind(i) == LayerKind.KDA ? kda(i) : null;
            MlaWeights mla = cfg.layerKind(i) == LayerKind.MLA ? mla(i) : null;
            MlpWeights dense = cfg.mlpKind(i) == MlpKind.DENSE ? mlp(DENSE_GATE, DENSE_UP, DENSE_DOWN, i, -1, cfg.intermediateSize()) : null;
            MoeWeights moe = cfg.mlpKind(i) == MlpKind.MOE ? moe(i) : null;
            layers.add(new LayerWeights(i, cfg.layerKind(i), inNorm, postNorm, kda, mla, dense, moe));
        }
        reportProblems();
        return new ModelWeights(cfg, embed, finalNorm, lmHead, layers);
    }

    private KdaWeights kda(int i) {
        KdaConfig k = cfg.kda();
        int c = k.projectionSize();
        int r = k.headDim();
        int dm = cfg.hiddenSize();
        float[][] convs = kdaConvs(i, c, k.convKernel());
        return new KdaWeights(
                matrix(KDA_Q, i, -1, c, dm), matrix(KDA_K, i, -1, c, dm), matrix(KDA_V, i, -1, c, dm),
                convs[0], convs[1], convs[2],
                matrix(KDA_F_A, i, -1, r, dm), matrix(KDA_F_B, i, -1, c, r),
                vector(KDA_A_LOG, i, k.numHeads()), vector(KDA_DT_BIAS, i, c),
                matrix(KDA_B, i, -1, k.numHeads(), dm),
                matrix(KDA_G_A, i, -1, r, dm), matrix(KDA_G_B, i, -1, c, r),
                vector(KDA_O_NORM, i, k.headDim()), matrix(KDA_O, i, -1, dm, c));
    }

    /** q, k, v conv taps as [C][kernel] fp32, from three tensors or from the fused [3C, 1, kernel] one. */
    private float[][] kdaConvs(int i, int c, int kernel) {
        if (!anyExists(KDA_Q_CONV, i, -1) && anyExists(KDA_QKV_CONV_FUSED, i, -1)) {
            Tensor fused = find(KDA_QKV_CONV_FUSED, i, -1, new long[]{3L * c, 1, kernel});
            if (fused == null) {
                return new float[][]{new float[c * kernel], new float[c * kernel], new float[c * kernel]};
            }
            return new float[][]{fused.slice(fused.name() + "[q]", 0, c).toFloatArray(),
                    fused.slice(fused.name() + "[k]", c, 2L * c).toFloatArray(),
                    fused.slice(fused.name() + "[v]", 2L * c, 3L * c).toFloatArray()};
        }
        long[] shape = {c, 1, kernel};
        return new float[][]{floats(find(KDA_Q_CONV, i, -1, shape), c * kernel), floats(find(KDA_K_CONV, i, -1, shape), c * kernel),
                floats(find(KDA_V_CONV, i, -1, shape), c * kernel)};
    }

    private MlaWeights mla(int i) {
        MlaConfig m = cfg.mla();
        int dm = cfg.hiddenSize();
        int qOut = m.numHeads() * m.qkHeadDim();
        Tensor qProj = null;
        Tensor qA = null;
        float[] qANorm = null;
        Tensor qB = null;
        if (m.qLoraRank() == 0) {
            qProj = matrix(MLA_Q, i, -1, qOut, dm);
        } else {
            qA = matrix(MLA_Q_A, i, -1, m.qLoraRank(), dm);
            qANorm = vector(MLA_Q_A_NORM, i, m.qLoraRank());
            qB = matrix(MLA_Q_B, i, -1, qOut, m.qLoraRank());
        }
        return new MlaWeights(qProj, qA, qANorm, qB,
                matrix(MLA_KV_A, i, -1, m.latentSize(), dm),
                vector(MLA_KV_A_NORM, i, m.kvLoraRank()),
                matrix(MLA_KV_B, i, -1, (long) m.numHeads() * (m.qkNopeHeadDim() + m.vHeadDim()), m.kvLoraRank()),
                matrix(MLA_O, i, -1, dm, (long) m.numHeads() * m.vHeadDim()));
    }

    private MlpWeights mlp(List<String> gate, List<String> up, List<String> down, int layer, int expert, int width) {
        int dm = cfg.hiddenSize();
        return new MlpWeights(matrix(gate, layer, expert, width, dm), matrix(up, layer, expert, width, dm), matrix(down, layer, expert, dm, width));
    }

    private MoeWeights moe(int i) {
        MoeConfig m = cfg.moe();
        int dm = cfg.hiddenSize();
        Tensor router = matrix(MOE_ROUTER, i, -1, m.numExperts(), dm);
        float[] bias = vector(MOE_BIAS, i, m.numExperts());
        List<MlpWeights> experts = new ArrayList<>();
        if (!anyExists(EXPERT_GATE, i, 0) && anyExists(EXPERTS_GATE_UP_FUSED, i, -1)) {
            int w = m.intermediateSize();
            Tensor gateUp = find(EXPERTS_GATE_UP_FUSED, i, -1, new long[]{m.numExperts(), 2L * w, dm});
            Tensor down = find(EXPERTS_DOWN_FUSED, i, -1, new long[]{m.numExperts(), dm, w});
            for (int e = 0; gateUp != null && down != null && e < m.numExperts(); e++) {
                Tensor gu = gateUp.slice(gateUp.name() + "[" + e + "]", e, e + 1).reshape(2L * w, dm);
                experts.add(new MlpWeights(gu.slice(gu.name() + ".gate", 0, w), gu.slice(gu.name() + ".up", w, 2L * w),
                        down.slice(down.name() + "[" + e + "]", e, e + 1).reshape(dm, w)));
            }
        } else {
            for (int e = 0; e < m.numExperts(); e++) {
                experts.add(mlp(EXPERT_GATE, EXPERT_UP, EXPERT_DOWN, i, e, m.intermediateSize()));
            }
        }
        MlpWeights shared = m.numSharedExperts() > 0 ? mlp(SHARED_GATE, SHARED_UP, SHARED_DOWN, i, -1, m.sharedIntermediateSize()) : null;
        return new MoeWeights(router, bias, experts, shared);
    }

    // ---- lookup helpers ----

    private boolean anyExists(List<String> patterns, int layer, int expert) {
        return patterns.stream().anyMatch(p -> ckpt.contains(WeightNames.resolve(p, layer, expert)));
    }

    private Tensor matrix(List<String> patterns, int layer, int expert, long rows, long cols) {
        return find(patterns, layer, expert, new long[]{rows, cols});
    }

    /** A small vector copied to fp32; any stored shape with the right element count is accepted (A_log is [1,1,H,1]). */
    private float[] vector(List<String> patterns, int layer, int length) {
        Tensor t = find(patterns, layer, -1, null);
        if (t != null && t.numel() != length) {
            badShapes.add(t.name() + " (" + ckpt.fileOf(t.name()).getFileName() + "): " + Arrays.toString(t.shape())
                    + " has " + t.numel() + " elements, expected " + length);
            return new float[length];
        }
        return floats(t, length);
    }

    private static float[] floats(Tensor t, int length) {
        return t == null ? new float[length] : t.toFloatArray();
    }

    /** The first existing name of a pattern list; checks dtype and (when given) shape; records problems. */
    private Tensor find(List<String> patterns, int layer, int expert, long[] shape) {
        for (String p : patterns) {
            String name = WeightNames.resolve(p, layer, expert);
            if (ckpt.contains(name)) {
                used.add(name);
                Tensor t = ckpt.tensor(name);
                if (!t.dtype().isFloatingPoint() || t.dtype() == dev.kimiserve.core.tensor.DType.F64) {
                    badShapes.add(name + " (" + ckpt.fileOf(name).getFileName() + "): dtype " + t.dtype() + " (weights must be BF16, F16 or F32)");
                    return null;
                }
                if (shape != null && !Arrays.equals(t.shape(), shape)) {
                    badShapes.add(name + " (" + ckpt.fileOf(name).getFileName() + "): shape " + Arrays.toString(t.shape())
                            + ", expected " + Arrays.toString(shape));
                    return null;
                }
                return t;
            }
        }
        List<String> tried = patterns.stream().map(p -> WeightNames.resolve(p, layer, expert)).toList();
        missing.add(tried.size() == 1 ? tried.get(0) : tried.get(0) + " (or " + String.join(", ", tried.subList(1, tried.size())) + ")");
        return null;
    }

    private void reportProblems() {
        Set<String> unexpected = new TreeSet<>(ckpt.names());
        unexpected.removeAll(used);
        if (missing.isEmpty() && unexpected.isEmpty() && badShapes.isEmpty()) {
            return;
        }
        StringBuilder sb = new StringBuilder("checkpoint does not match config.json");
        appendList(sb, "missing tensors", missing);
        appendList(sb, "unexpected tensors", new ArrayList<>(unexpected));
        appendList(sb, "wrong shape or dtype", badShapes);
        throw ModelFormatException.of(ckpt.directory(), sb.toString());
    }

    private static void appendList(StringBuilder sb, String title, List<String> items) {
        if (items.isEmpty()) {
            return;
        }
        sb.append("\n  ").append(title).append(" (").append(items.size()).append("):");
        int shown = 0;
        for (String s : items) {
            if (shown++ == 50) {
                sb.append("\n    ... and ").append(items.size() - 50).append(" more");
                break;
            }
            sb.append("\n    ").append(s);
        }
    }
}
