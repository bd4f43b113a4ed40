package dev.kimiserve.cuda;

import jcuda.driver.CUfunction;

/**
 * Launches {@code kda_decode} (src/main/cuda/kda_decode.cu): one recurrent KDA step for each of B sequences and every
 * head, the fp32 state of each sequence read and written once in its pool slot. K = V = 128 (the model's head size).
 *
 * <pre>
 * q, k, g  [B, H, 128] fp32   (q L2-normed and scaled, k L2-normed, g = log decay)
 * v        [B, H, 128] fp32
 * beta     [B, H]      fp32
 * slots    [B]         int32  (state slot of each sequence)
 * states   [slots, H, 128, 128] fp32, updated in place
 * out      [B, H, 128] fp32
 * </pre>
 */
public final class KdaDecodeKernel {
    public static final int HEAD_DIM = 128;
    /** A tiling compiled into the module: entry name, columns per thread, row groups (threads = 32 x groups). */
    public record Variant(String entry, int vec, int rowGroups) {
    }

    public static final Variant V1X8 = new Variant("kda_decode_v1x8", 1, 8);
    public static final Variant V4X8 = new Variant("kda_decode_v4x8", 4, 8);
    public static final java.util.List<Variant> VARIANTS = java.util.List.of(V1X8, new Variant("kda_decode_v1x16", 1, 16),
            new Variant("kda_decode_v2x8", 2, 8), V4X8, new Variant("kda_decode_v4x16", 4, 16));
    /** Below this batch the narrow tiling wins (more blocks for few sequences); from it on, 16-byte accesses. */
    static final int WIDE_FROM_BATCH = 16;
    private final CudaDevice device;
    private final Variant fixed;
    private final boolean overlap;
    private final java.util.Map<Variant, CUfunction> functions = new java.util.HashMap<>();

    /** Picks the tiling per launch by batch size (measured on H100: docs/benchmarks.md, CUDA kernels). */
    public KdaDecodeKernel(CudaDevice device, CudaModule module) {
        this(device, module, null, false);
    }

    /**
     * Always this tiling when {@code variant} is not null (tests and the variant benchmark). With {@code overlap} a launch
     * may start while the kernel before it still runs ({@link KernelLaunch}); the kernel waits for q, k, v, g and beta
     * but loads its state tile first, so the kernel launched just before must not write the states.
     */
    public KdaDecodeKernel(CudaDevice device, CudaModule module, Variant variant, boolean overlap) {
        this.device = device;
        this.fixed = variant;
        this.overlap = overlap;
        for (Variant v : variant == null ? java.util.List.of(V1X8, V4X8) : java.util.List.of(variant)) {
            functions.put(v, module.function(v.entry()));
        }
    }

    /** The tiling a launch of {@code batch} sequences uses. */
    public Variant variantFor(int batch) {
        return fixed != null ? fixed : batch < WIDE_FROM_BATCH ? V1X8 : V4X8;
    }

    public void launch(int batch, int heads, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer g, DeviceBuffer beta,
                       DeviceBuffer slots, DeviceBuffer states, DeviceBuffer out) {
        if (batch <= 0 || heads <= 0 || batch > 65535 || heads > 65535) {
            throw new IllegalArgumentException("kda_decode: batch " + batch + " and heads " + heads + " must be in 1..65535");
        }
        long vectors = 4L * batch * heads * HEAD_DIM;
        q.require("kda_decode", "q", vectors);
        k.require("kda_decode", "k", vectors);
        v.require("kda_decode", "v", vectors);
        g.require("kda_decode", "g", vectors);
        beta.require("kda_decode", "beta", 4L * batch * heads);
        slots.require("kda_decode", "slots", 4L * batch);
        out.require("kda_decode", "out", vectors);
        device.makeCurrent();
        Variant variant = variantFor(batch);
        KernelLaunch.launch(device, functions.get(variant), HEAD_DIM / (32 * variant.vec()), heads, batch, 32, variant.rowGroups(), 1, 0,
                overlap, q, k, v, g, beta, slots, states, out, heads);
    }

}
