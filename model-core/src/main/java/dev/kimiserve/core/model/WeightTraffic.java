package dev.kimiserve.core.model;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.weights.KdaWeights;
import dev.kimiserve.core.weights.LayerWeights;
import dev.kimiserve.core.weights.MlaWeights;
import dev.kimiserve.core.weights.MlpWeights;
import dev.kimiserve.core.weights.ModelWeights;

/**
 * Weight bytes a forward pass must read: everything always active (attention, dense MLPs, shared experts, routers,
 * norms, LM head) plus one routed expert's bytes per distinct expert a step selects. The roofline of decode is
 * these bytes over the machine's read bandwidth.
 */
public final class WeightTraffic {
    private final long alwaysActiveBytes;
    private final long expertBytes;
    private final long embeddingRowBytes;

    public WeightTraffic(ModelWeights w) {
        KimiLinearConfig c = w.config();
        long always = bytes(w.lmHead()) + 4L * c.hiddenSize();
        long expert = 0;
        for (LayerWeights l : w.layers()) {
            always += 8L * c.hiddenSize();
            if (l.kda() != null) {
                KdaWeights k = l.kda();
                always += bytes(k.qProj()) + bytes(k.kProj()) + bytes(k.vProj()) + bytes(k.fA()) + bytes(k.fB())
                        + bytes(k.bProj()) + bytes(k.gA()) + bytes(k.gB()) + bytes(k.oProj());
            } else {
                MlaWeights m = l.mla();
                always += (m.qProj() != null ? bytes(m.qProj()) : bytes(m.qA()) + bytes(m.qB())) + bytes(m.kvA()) + bytes(m.kvB()) + bytes(m.oProj());
            }
            if (l.dense() != null) {
                always += bytes(l.dense());
            } else {
                always += bytes(l.moe().router()) + (l.moe().shared() != null ? bytes(l.moe().shared()) : 0);
                expert = bytes(l.moe().experts().get(0));
            }
        }
        this.alwaysActiveBytes = always;
        this.expertBytes = expert;
        this.embeddingRowBytes = w.embed().dtype().byteSize() * (long) c.hiddenSize();
    }

    private static long bytes(Tensor t) {
        return t.numel() * t.dtype().byteSize();
    }

    private static long bytes(MlpWeights m) {
        return bytes(m.gate()) + bytes(m.up()) + bytes(m.down());
    }

    /** Bytes of one step over {@code tokens} tokens that selected {@code distinctExperts} (summed over MoE layers). */
    public long stepBytes(int tokens, long distinctExperts) {
        return alwaysActiveBytes + distinctExperts * expertBytes + tokens * embeddingRowBytes;
    }

    public long alwaysActiveBytes() {
        return alwaysActiveBytes;
    }

    public long expertBytes() {
        return expertBytes;
    }
}
