package dev.kimiserve.cuda;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.tools.RandomCheckpoint;
import dev.kimiserve.core.weights.KdaWeights;
import dev.kimiserve.core.weights.LayerWeights;
import dev.kimiserve.core.weights.MlaWeights;
import dev.kimiserve.core.weights.MlpWeights;
import dev.kimiserve.core.weights.ModelWeights;
import dev.kimiserve.core.weights.MoeWeights;
import java.util.ArrayList;
import java.util.List;

/**
 * Every weight of a model in device memory, uploaded once: matrices as bf16 [out][in] (a bf16 checkpoint is copied
 * byte for byte; other dtypes are rounded to bf16), small vectors fp32. Matrices that read the same input are stacked
 * so that one launch computes them all: KDA's q|k|v|f_a|g_a|b, MLA's q (or q_a)|kv_a, gate|up of each MLP, and the
 * routed experts of a layer as [E][2I][D] and [E][D][I].
 */
final class DeviceWeights implements AutoCloseable {
    /** A bf16 matrix [rows, cols] on the device. */
    record Matrix(DeviceBuffer data, int rows, int cols) {
    }

    /** KDA: in = [q (C) | k (C) | v (C) | f_a (R) | g_a (R) | b (H)] x D; taps [3C][W+1]. */
    record Kda(Matrix in, Matrix fB, Matrix gB, Matrix out, DeviceBuffer taps, DeviceBuffer aLog, DeviceBuffer dtBias, DeviceBuffer oNorm) {
    }

    /** MLA: in = [q (H*Q) or q_a (qLoraRank) | kv_a (L+P)] x D; qB and qANorm only with a low-rank q. */
    record Mla(Matrix in, Matrix qB, DeviceBuffer qANorm, DeviceBuffer kvANorm, Matrix kvB, Matrix out) {
    }

    /** SwiGLU: gateUp = [gate (I) | up (I)] x D. */
    record Mlp(Matrix gateUp, Matrix down, int width) {
    }

    /**
     * Routed experts stacked: gateUp [E][2I][D], down [E][D][I]; shared may be null. With a shared expert,
     * routerAndShared = [router (E) | shared gate (I) | shared up (I)] x D is one matrix, router and shared.gateUp its
     * row ranges: one GEMV can make the router logits and the shared expert's gate|up of the same input.
     */
    record Moe(Matrix router, DeviceBuffer bias, DeviceBuffer gateUp, DeviceBuffer down, int width, Mlp shared, Matrix routerAndShared) {
    }

    record Layer(DeviceBuffer inputNorm, DeviceBuffer postNorm, Kda kda, Mla mla, Mlp dense, Moe moe) {
    }

    private final CudaDevice device;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    final Matrix embed;
    final Matrix lmHead;
    final DeviceBuffer finalNorm;
    final Layer[] layers;
    private long bytes;

    DeviceWeights(CudaDevice device, ModelWeights w) {
        this.device = device;
        KimiLinearConfig cfg = w.config();
        try {
            embed = stack(w.embed());
            lmHead = w.lmHead() == w.embed() ? embed : stack(w.lmHead());
            finalNorm = vector(w.finalNorm());
            layers = new Layer[cfg.numLayers()];
            for (int i = 0; i < layers.length; i++) {
                LayerWeights lw = w.layer(i);
                layers[i] = new Layer(vector(lw.inputNorm()), vector(lw.postAttnNorm()),
                        lw.kda() == null ? null : kda(lw.kda(), cfg.kda().convKernel()),
                        lw.mla() == null ? null : mla(lw.mla()),
                        lw.dense() == null ? null : mlp(lw.dense()),
                        lw.moe() == null ? null : moe(lw.moe()));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Device bytes the weights occupy. */
    long bytes() {
        return bytes;
    }

    private Kda kda(KdaWeights k, int convKernel) {
        float[] taps = new float[k.qConv().length * 3];
        System.arraycopy(k.qConv(), 0, taps, 0, k.qConv().length);
        System.arraycopy(k.kConv(), 0, taps, k.qConv().length, k.kConv().length);
        System.arraycopy(k.vConv(), 0, taps, 2 * k.qConv().length, k.vConv().length);
        return new Kda(stack(k.qProj(), k.kProj(), k.vProj(), k.fA(), k.gA(), k.bProj()), stack(k.fB()), stack(k.gB()), stack(k.oProj()),
                vector(taps), vector(k.aLog()), vector(k.dtBias()), vector(k.oNorm()));
    }

    private Mla mla(MlaWeights m) {
        boolean lowRank = m.qProj() == null;
        return new Mla(lowRank ? stack(m.qA(), m.kvA()) : stack(m.qProj(), m.kvA()), lowRank ? stack(m.qB()) : null,
                lowRank ? vector(m.qANorm()) : null, vector(m.kvANorm()), stack(m.kvB()), stack(m.oProj()));
    }

    private Mlp mlp(MlpWeights m) {
        return m == null ? null : new Mlp(stack(m.gate(), m.up()), stack(m.down()), m.intermediateSize());
    }

    private Moe moe(MoeWeights m) {
        List<Tensor> gateUp = new ArrayList<>();
        List<Tensor> down = new ArrayList<>();
        for (MlpWeights e : m.experts()) {
            gateUp.add(e.gate());
            gateUp.add(e.up());
            down.add(e.down());
        }
        int width = m.experts().getFirst().intermediateSize();
        DeviceBuffer experts = stack(gateUp.toArray(Tensor[]::new)).data();
        DeviceBuffer expertsDown = stack(down.toArray(Tensor[]::new)).data();
        if (m.shared() == null) {
            return new Moe(stack(m.router()), vector(m.correctionBias()), experts, expertsDown, width, null, null);
        }
        Matrix both = stack(m.router(), m.shared().gate(), m.shared().up());
        int e = (int) m.router().dim(0);
        long routerBytes = 2L * e * both.cols();
        Matrix router = new Matrix(both.data().slice(0, routerBytes), e, both.cols());
        Matrix sharedGateUp = new Matrix(both.data().slice(routerBytes, both.data().bytes() - routerBytes), both.rows() - e, both.cols());
        Mlp shared = new Mlp(sharedGateUp, stack(m.shared().down()), m.shared().intermediateSize());
        return new Moe(router, vector(m.correctionBias()), experts, expertsDown, width, shared, both);
    }

    /** The row-wise concatenation of 2-D tensors with equal columns, as one bf16 matrix. */
    private Matrix stack(Tensor... parts) {
        int cols = (int) parts[0].dim(parts[0].rank() - 1);
        long rows = 0;
        for (Tensor t : parts) {
            if (t.dim(t.rank() - 1) != cols) {
                throw new IllegalArgumentException("cannot stack " + t.name() + " (" + t.dim(t.rank() - 1) + " columns) with "
                        + parts[0].name() + " (" + cols + ")");
            }
            rows += t.numel() / cols;
        }
        DeviceBuffer buffer = own(DeviceBuffer.allocate(device, 2L * rows * cols));
        long at = 0;
        for (Tensor t : parts) {
            long n = 2L * t.numel();
            DeviceBuffer dst = buffer.slice(at, n);
            if (t.dtype() == DType.BF16) {
                dst.upload(t.data().asSlice(0, n));
            } else {
                uploadRounded(t, dst);
            }
            at += n;
        }
        return new Matrix(buffer, (int) rows, cols);
    }

    private static void uploadRounded(Tensor t, DeviceBuffer dst) {
        short[] chunk = new short[1 << 22];
        for (long from = 0; from < t.numel(); from += chunk.length) {
            int n = (int) Math.min(chunk.length, t.numel() - from);
            for (int i = 0; i < n; i++) {
                chunk[i] = RandomCheckpoint.toBf16(t.getFloat(from + i));
            }
            dst.slice(2L * from, 2L * n).upload(chunk, n);
        }
    }

    private DeviceBuffer vector(float[] values) {
        return values == null ? null : own(DeviceBuffer.of(device, values));
    }

    private DeviceBuffer own(DeviceBuffer b) {
        owned.add(b);
        bytes += b.bytes();
        return b;
    }

    @Override
    public void close() {
        owned.forEach(DeviceBuffer::close);
        owned.clear();
    }
}
