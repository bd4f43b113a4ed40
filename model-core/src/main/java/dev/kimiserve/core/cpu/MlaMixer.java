package dev.kimiserve.core.cpu;

import dev.kimiserve.core.config.MlaConfig;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.weights.MlaWeights;
import java.util.ArrayList;
import java.util.List;

/**
 * The MLA token mixer over a ragged batch (spec section 5): latents [c | k_pe] are appended to each sequence's cache;
 * prefill segments attend in the expanded form, decode segments in the weight-absorbed form.
 */
final class MlaMixer {
    /** Scratch shared by the MLA layers of one engine. */
    static final class Scratch {
        float[] q, qa, qaPaired, kva, o, oPaired;
        final MatmulJob[] jobs = {new MatmulJob(), new MatmulJob()};
        final List<Segment> decodeSegments = new ArrayList<>();

        void ensure(int rows, MlaConfig c) {
            q = Buffers.atLeast(q, rows * c.numHeads() * c.qkHeadDim());
            qa = Buffers.atLeast(qa, rows * Math.max(1, c.qLoraRank()));
            qaPaired = Buffers.atLeast(qaPaired, rows * Math.max(1, c.qLoraRank()));
            kva = Buffers.atLeast(kva, rows * c.latentSize());
            o = Buffers.atLeast(o, rows * c.numHeads() * c.vHeadDim());
            oPaired = Buffers.atLeast(oPaired, rows * c.numHeads() * c.vHeadDim());
        }
    }

    private final MlaConfig cfg;
    private final int layer;
    private final WeightMatrix qProj, qA, qB, kvA, kvB, oProj;
    private final WeightMatrix[] kvBk, kvBv;
    private final float[] qANorm, kvANorm;

    MlaMixer(MlaConfig cfg, MlaWeights w, int layer) {
        this.cfg = cfg;
        this.layer = layer;
        qProj = w.qProj() != null ? WeightMatrix.of(w.qProj()) : null;
        qA = w.qA() != null ? WeightMatrix.of(w.qA()) : null;
        qB = w.qB() != null ? WeightMatrix.of(w.qB()) : null;
        qANorm = w.qANorm();
        kvA = WeightMatrix.of(w.kvA());
        kvB = WeightMatrix.of(w.kvB());
        kvANorm = w.kvANorm();
        oProj = WeightMatrix.of(w.oProj());
        int heads = cfg.numHeads();
        int per = cfg.qkNopeHeadDim() + cfg.vHeadDim();
        kvBk = new WeightMatrix[heads];
        kvBv = new WeightMatrix[heads];
        for (int h = 0; h < heads; h++) {
            kvBk[h] = kvB.rows(h * per, h * per + cfg.qkNopeHeadDim());
            kvBv[h] = kvB.rows(h * per + cfg.qkNopeHeadDim(), (h + 1) * per);
        }
    }

    /** x [rows, D] paired -> out [rows, D] natural. */
    void forward(Matmuls mm, MlaAttention attention, Scratch s, float[] x, int rows, List<Segment> segments, float[] out) {
        int lora = cfg.kvLoraRank();
        int latent = cfg.latentSize();
        MatmulJob[] j = s.jobs;
        j[1].set(kvA, x, rows, s.kva);                                 // kv_a_proj_with_mqa(x) = [c_raw | k_pe]
        if (qProj != null) {
            j[0].set(qProj, x, rows, s.q);                             // q_proj(x)
            mm.run(j, 2);
        } else {
            int qr = cfg.qLoraRank();
            j[0].set(qA, x, rows, s.qa);                               // q_b_proj(q_a_layernorm(q_a_proj(x)))
            mm.run(j, 2);
            for (int r = 0; r < rows; r++) {
                Norms.rmsNorm(s.qa, r * qr, qr, qANorm, 1e-6f, s.qa, r * qr);
                Vec.pairOrder(s.qa, r * qr, qr, s.qaPaired, r * qr);
            }
            mm.run(j[0].set(qB, s.qaPaired, rows, s.q));
        }
        for (int r = 0; r < rows; r++) {                               // c = kv_a_layernorm(c_raw); k_pe untouched (NoPE)
            Norms.rmsNorm(s.kva, r * latent, lora, kvANorm, cfg.kvALayernormEps(), s.kva, r * latent);
        }
        s.decodeSegments.clear();
        for (Segment seg : segments) {
            MlaCache cache = seg.state().mla(layer);
            int past = cache.length();
            for (int t = 0; t < seg.count(); t++) {
                cache.append(s.kva, (seg.start() + t) * latent);
            }
            if (seg.decode()) {
                s.decodeSegments.add(seg);
            } else {
                attention.expanded(kvB, cache, s.q, seg.start(), seg.count(), past, s.o);
            }
        }
        if (!s.decodeSegments.isEmpty()) {
            attention.absorbed(kvBk, kvBv, s.decodeSegments, layer, s.q, s.o);
        }
        int ov = cfg.numHeads() * cfg.vHeadDim();
        for (int r = 0; r < rows; r++) {
            Vec.pairOrder(s.o, r * ov, ov, s.oPaired, r * ov);
        }
        mm.run(j[0].set(oProj, s.oPaired, rows, out));                 // o_proj
    }
}
