package dev.kimiserve.cuda;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUfunction;

/**
 * Launches the projection kernels of src/main/cuda/gemv.cu: y[M, N] (+)= x[M, K] · w[N, K]^T with fp32 activations and
 * bf16 weights, for few rows. Each fp32 {@link Variant} keeps {@code columnsPerWarp} weight rows in flight per warp and
 * splits K over {@code warpsPerColumn} warps; a batch of one uses the entry compiled for one row (same sums, fewer
 * registers). {@link #TC} runs on tensor cores with the activations split into hi + lo bf16, up to 64 rows per block
 * ({@link #launchMoe} is its expert-tile form). Needs K % 8 == 0 and 16-byte aligned rows.
 */
public final class GemvKernel {
    /** A tiling compiled into the module; {@code tc} (0 columns per warp) is the tensor-core kernel. */
    public record Variant(String name, int columnsPerWarp, int warpsPerColumn) {
        int columnsPerBlock() {
            return tensorCores() ? 16 : 8 / warpsPerColumn * columnsPerWarp;
        }

        boolean tensorCores() {
            return columnsPerWarp == 0;
        }
    }

    /** The tensor-core kernel: 16 output columns per block, rows in n-tiles of 8, up to 64 rows per block. */
    public static final Variant TC = new Variant("tc", 0, 8);
    public static final List<Variant> VARIANTS = List.of(new Variant("c1w1", 1, 1), new Variant("c2w1", 2, 1), new Variant("c4w1", 4, 1),
            new Variant("c1w2", 1, 2), new Variant("c1w4", 1, 4), new Variant("c2w2", 2, 2), new Variant("c2w4", 2, 4), TC);
    private static final int[] TC_TILES = {1, 2, 4, 8};
    private final CudaDevice device;
    private final boolean overlap;
    private final Map<String, CUfunction> functions = new HashMap<>();

    /** Plain stream-order launches. */
    public GemvKernel(CudaDevice device, CudaModule module) {
        this(device, module, false);
    }

    /**
     * With {@code overlap} a launch may start while the kernel before it still runs ({@link KernelLaunch}): it prefetches
     * its weights into L2, then waits for its activations.
     */
    public GemvKernel(CudaDevice device, CudaModule module, boolean overlap) {
        this.device = device;
        this.overlap = overlap;
        for (Variant v : VARIANTS) {
            if (!v.tensorCores()) {
                for (String form : new String[]{"_r1", "_r8", "_r1_swiglu", "_r8_swiglu"}) {
                    functions.put(v.name() + form, module.function("gemv_" + v.name() + form));
                }
            }
        }
        for (int tiles : TC_TILES) {
            functions.put("tc_n" + tiles, module.function("gemv_tc_n" + tiles));
        }
        functions.put("moe_tc", module.function("moe_gemv_tc"));
    }

    /** The variant called {@code name}, or an exception listing the known ones. */
    public static Variant variant(String name) {
        return VARIANTS.stream().filter(v -> v.name().equals(name)).findFirst().orElseThrow(() -> new IllegalArgumentException(
                "unknown gemv variant '" + name + "' (choose from " + VARIANTS.stream().map(Variant::name).toList() + ")"));
    }

    /** Whether the tilings apply: K a multiple of 8 and 16-byte aligned rows of x. */
    public static boolean applies(DeviceBuffer x, int ldx, int k) {
        return k % 8 == 0 && ldx % 4 == 0 && Native.address(x.pointer()) % 16 == 0;
    }

    public void launch(Variant v, DeviceBuffer x, int ldx, DeviceBuffer w, DeviceBuffer y, int ldy, int m, int n, int k, boolean accumulate) {
        launch(v, x, ldx, w, y, ldy, m, n, k, accumulate, false);
    }

    /** Shared memory a block may stage SwiGLU inputs in: the 48 KB a launch gets without opting in, less the kernels' own. */
    static final int STAGE_BYTES = 40 * 1024;

    /** Whether a gated launch of {@code m} rows can stage its inputs ({@code k} floats per row of a block). */
    public static boolean swigluFits(int m, int k) {
        return (m == 1 ? 1L : 8L) * 4 * k <= STAGE_BYTES;
    }

    /**
     * {@link #launch} where {@code gated} says x's rows hold gate|up ({@code k} values each) and the input is their SwiGLU,
     * staged per block exactly as engine.cu's swiglu kernel writes it (fp32 tilings only, {@link #swigluFits}).
     */
    public void launch(Variant v, DeviceBuffer x, int ldx, DeviceBuffer w, DeviceBuffer y, int ldy, int m, int n, int k, boolean accumulate,
                       boolean gated) {
        if (m <= 0 || n <= 0 || k <= 0 || !applies(x, ldx, k) || gated && (v.tensorCores() || ldx < 2 * k || !swigluFits(m, k))) {
            throw new IllegalArgumentException("gemv " + v.name() + ": m=" + m + " n=" + n + " k=" + k + " ldx=" + ldx + " gated=" + gated
                    + " (needs positive sizes, k % 8 == 0, 16-byte aligned rows; gated: an fp32 tiling, ldx >= 2k, staging that fits)");
        }
        x.require("gemv", "x", 4L * ((long) (m - 1) * ldx + (gated ? 2L * k : k)));
        w.require("gemv", "w", 2L * n * k);
        y.require("gemv", "y", 4L * ((long) (m - 1) * ldy + n));
        int rowsPerBlock = m == 1 ? 1 : 8;
        String entry = v.name() + (m == 1 ? "_r1" : "_r8") + (gated ? "_swiglu" : "");
        if (v.tensorCores()) {                             // the fewest n-tiles of 8 rows that hold m, at most 8
            int need = (m + 7) / 8;
            int tiles = need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : 8;
            rowsPerBlock = 8 * tiles;
            entry = "tc_n" + tiles;
        }
        device.makeCurrent();
        KernelLaunch.launch(device, functions.get(entry), (n + v.columnsPerBlock() - 1) / v.columnsPerBlock(), (m + rowsPerBlock - 1) / rowsPerBlock,
                1, 256, 1, 1, gated ? 4 * rowsPerBlock * k : 0, overlap, x, ldx, w, y, ldy, m, n, k, accumulate ? 1 : 0);
    }

    /**
     * One expert projection on tensor cores for tiles of 8 pair positions (engine.cu's moe_align grouping): stage 0 reads
     * token order[p] / topk of x into row p of y, stage 1 row p of x into row order[p]. w is [E][n][k], expertStride
     * elements apart.
     */
    public void launchMoe(int maxTiles, DeviceBuffer x, int ldx, DeviceBuffer order, DeviceBuffer tileExpert, DeviceBuffer tileCount,
                          int topk, int stage, DeviceBuffer w, long expertStride, DeviceBuffer y, int ldy, int n, int k) {
        if (maxTiles <= 0 || n <= 0 || k <= 0 || !applies(x, ldx, k)) {
            throw new IllegalArgumentException("moe_gemv_tc: tiles=" + maxTiles + " n=" + n + " k=" + k + " ldx=" + ldx
                    + " (needs positive sizes, k % 8 == 0 and 16-byte aligned rows)");
        }
        device.makeCurrent();
        KernelLaunch.launch(device, functions.get("moe_tc"), (n + 15) / 16, maxTiles, 1, 256, 1, 1, 0, overlap, x, ldx, order, tileExpert,
                tileCount, topk, stage, w, expertStride, y, ldy, n, k);
    }
}
