package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;

import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;

/**
 * Launches the tiled MLA attention of src/main/cuda/mla_tiled.cu (absorbed form, fp32 cache): 16 queries share every
 * latent tile they read, in prefill 16 rows of one sequence and one head, in decode 16 heads of one token (with the
 * positions split into slices and combined by engine.cu's mla_attend_combine).
 *
 * <pre>
 * qAbs   [rows, H, W] fp32   absorbed queries [W_k^T q_nope | q_pe], W = L + P, unscaled
 * cache  [cache rows, W] fp32; pages: prefill the sequence's page ids, decode the page table [segments, maxPages]
 * z      [rows, H, L] fp32 (prefill); decode: partials [rows, H, splits, L] and [rows, H, splits, 2]
 * </pre>
 */
final class MlaTiledKernel {
    private static final int QUERIES = 16;
    private static final int KEYS = 32;
    /** Shared memory a block may opt into on sm_80+ (kept under the H100's 227 KiB). */
    private static final int MAX_SHARED = 200 * 1024;
    private final CudaDevice device;
    private final CUfunction prefill;
    private final CUfunction decode;
    private final int width;

    MlaTiledKernel(CudaDevice device, CudaModule module, int width) {
        if (!fits(width)) {
            throw new IllegalArgumentException("tiled mla: a latent of " + width + " values needs " + sharedBytes(width) + " bytes of shared memory");
        }
        this.device = device;
        this.width = width;
        this.prefill = module.function("mla_prefill_attend");
        this.decode = module.function("mla_decode_attend");
        device.makeCurrent();
        cuFuncSetAttribute(prefill, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes(width));
        cuFuncSetAttribute(decode, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes(width));
    }

    static int sharedBytes(int width) {
        return 4 * ((QUERIES + KEYS) * (width + 1) + QUERIES * (KEYS + 1));
    }

    /** Whether a latent of {@code width} values fits the kernels' shared memory. */
    static boolean fits(int width) {
        return sharedBytes(width) <= MAX_SHARED;
    }

    /** Prefill attention of {@code rows} consecutive rows of one sequence. */
    void prefill(int rows, int heads, DeviceBuffer qAbs, DeviceBuffer cache, DeviceBuffer pages, DeviceBuffer tokPos, float scale,
                 DeviceBuffer z, int lora) {
        qAbs.require("mla prefill", "qAbs", 4L * rows * heads * width);
        tokPos.require("mla prefill", "tokPos", 4L * rows);
        z.require("mla prefill", "z", 4L * rows * heads * lora);
        device.makeCurrent();
        cuLaunchKernel(prefill, (rows + QUERIES - 1) / QUERIES, heads, 1, 256, 1, 1, sharedBytes(width), device.stream(),
                Pointer.to(Pointer.to(qAbs.pointer()), Pointer.to(cache.pointer()), Pointer.to(pages.pointer()), Pointer.to(tokPos.pointer()),
                        Pointer.to(new int[]{rows}), Pointer.to(new float[]{scale}), Pointer.to(z.pointer()), Pointer.to(new int[]{heads}),
                        Pointer.to(new int[]{lora}), Pointer.to(new int[]{width})), null);
    }

    /** Decode: the slice partials of every (token, head) for engine.cu's mla_attend_combine. */
    void decode(int rows, int heads, DeviceBuffer qAbs, DeviceBuffer cache, DeviceBuffer pageTable, int maxPages, DeviceBuffer tokSeg,
                DeviceBuffer tokPos, float scale, int lora, int splits, DeviceBuffer partZ, DeviceBuffer partMl) {
        qAbs.require("mla decode", "qAbs", 4L * rows * heads * width);
        partZ.require("mla decode", "partZ", 4L * rows * heads * splits * lora);
        partMl.require("mla decode", "partMl", 8L * rows * heads * splits);
        device.makeCurrent();
        cuLaunchKernel(decode, rows, (heads + QUERIES - 1) / QUERIES, splits, 256, 1, 1, sharedBytes(width), device.stream(),
                Pointer.to(Pointer.to(qAbs.pointer()), Pointer.to(cache.pointer()), Pointer.to(pageTable.pointer()),
                        Pointer.to(new int[]{maxPages}), Pointer.to(tokSeg.pointer()), Pointer.to(tokPos.pointer()), Pointer.to(new float[]{scale}),
                        Pointer.to(new int[]{heads}), Pointer.to(new int[]{lora}), Pointer.to(new int[]{width}), Pointer.to(new int[]{splits}),
                        Pointer.to(partZ.pointer()), Pointer.to(partMl.pointer())), null);
    }
}
