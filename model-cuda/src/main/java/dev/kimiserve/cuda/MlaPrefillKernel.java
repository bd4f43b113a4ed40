package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;

import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * Launches the tiled MLA prefill attention of src/main/cuda/mla_prefill.cu for the rows of one sequence: 16 queries per
 * block share every latent tile they read (absorbed form, fp32 cache).
 *
 * <pre>
 * qAbs   [rows, H, W] fp32   absorbed queries [W_k^T q_nope | q_pe], W = L + P, unscaled
 * cache  [cache rows, W] fp32, pages [> max position / 64] int32 (the sequence's page ids), tokPos [rows] int32
 * z      [rows, H, L] fp32
 * </pre>
 */
final class MlaPrefillKernel {
    private static final int QUERIES = 16;
    private static final int KEYS = 32;
    /** Shared memory a block may opt into on sm_80+ (kept under the H100's 227 KiB). */
    private static final int MAX_SHARED = 200 * 1024;
    private final CudaDevice device;
    private final CUfunction attend;
    private final int width;

    MlaPrefillKernel(CudaDevice device, CudaModule module, int width) {
        if (!fits(width)) {
            throw new IllegalArgumentException("mla prefill: a latent of " + width + " values needs " + sharedBytes(width) + " bytes of shared memory");
        }
        this.device = device;
        this.width = width;
        this.attend = module.function("mla_prefill_attend");
        device.makeCurrent();
        cuFuncSetAttribute(attend, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes(width));
    }

    static int sharedBytes(int width) {
        return 4 * ((QUERIES + KEYS) * (width + 1) + QUERIES * (KEYS + 1));
    }

    /** Whether a latent of {@code width} values fits the kernel's shared memory (and its 1024-value output per head). */
    static boolean fits(int width) {
        return sharedBytes(width) <= MAX_SHARED;
    }

    void launch(int rows, int heads, DeviceBuffer qAbs, DeviceBuffer cache, DeviceBuffer pages, DeviceBuffer tokPos, float scale,
                DeviceBuffer z, int lora) {
        qAbs.require("mla prefill", "qAbs", 4L * rows * heads * width);
        tokPos.require("mla prefill", "tokPos", 4L * rows);
        z.require("mla prefill", "z", 4L * rows * heads * lora);
        device.makeCurrent();
        cuLaunchKernel(attend, (rows + QUERIES - 1) / QUERIES, heads, 1, 256, 1, 1, sharedBytes(width), device.stream(),
                Pointer.to(Pointer.to(qAbs.pointer()), Pointer.to(cache.pointer()), Pointer.to(pages.pointer()), Pointer.to(tokPos.pointer()),
                        Pointer.to(new int[]{rows}), Pointer.to(new float[]{scale}), Pointer.to(z.pointer()), Pointer.to(new int[]{heads}),
                        Pointer.to(new int[]{lora}), Pointer.to(new int[]{width})), null);
    }
}
