package dev.kimiserve.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashMap;
import java.util.Map;

/**
 * bf16 matrix products through NVIDIA's cuBLASLt 13, called with Java's FFM (JCuda's JCublas needs CUDA 12 libraries
 * the GPU hosts lack). One shape: Y[M, N] = X[M, K] · W[N, K]^T, all row-major, bf16 inputs, fp32 accumulation, bf16 or
 * fp32 output: the projections of the model with weights as checkpoints store them. The algorithm for each shape is
 * chosen once by cuBLASLt's heuristic and cached with its descriptors.
 */
public final class CublasLt implements AutoCloseable {
    /** Output element type. */
    public enum Out { BF16, F32 }

    private static final int CUBLAS_COMPUTE_32F = 68;
    private static final int CUDA_R_32F = 0;
    private static final int CUDA_R_16BF = 14;
    private static final int DESC_TRANSA = 3;
    private static final int DESC_TRANSB = 4;
    private static final int OP_N = 0;
    private static final int OP_T = 1;
    private static final int PREF_MAX_WORKSPACE_BYTES = 1;
    private static final long HEURISTIC_RESULT_BYTES = 96;      // algo (64) + workspaceSize + state + wavesCount + reserved[4]
    private static final long WORKSPACE_BYTES = 32L << 20;
    private static final String LIBRARY = "libcublasLt.so.13";

    private final CudaDevice device;
    private final Arena arena = Arena.ofShared();
    private final MethodHandle matmul;
    private final MethodHandle layoutCreate;
    private final MethodHandle descCreate;
    private final MethodHandle descSet;
    private final MethodHandle prefCreate;
    private final MethodHandle prefSet;
    private final MethodHandle heuristic;
    private final MethodHandle destroy;
    private final MemorySegment handle;
    private final DeviceBuffer workspace;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private final Map<String, Plan> plans = new HashMap<>();

    private record Plan(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment algo) {
    }

    /** Null when cuBLASLt 13 can be loaded here, else why not. */
    public static String unavailableReason() {
        try (Arena a = Arena.ofConfined()) {
            SymbolLookup.libraryLookup(LIBRARY, a);
            return null;
        } catch (IllegalArgumentException e) {
            return LIBRARY + " cannot be loaded (" + e.getMessage() + ")";
        }
    }

    public CublasLt(CudaDevice device) {
        this.device = device;
        SymbolLookup lib = SymbolLookup.libraryLookup(LIBRARY, arena);
        Linker linker = Linker.nativeLinker();
        matmul = function(linker, lib, "cublasLtMatmul", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        layoutCreate = function(linker, lib, "cublasLtMatrixLayoutCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        descCreate = function(linker, lib, "cublasLtMatmulDescCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        descSet = function(linker, lib, "cublasLtMatmulDescSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        prefCreate = function(linker, lib, "cublasLtMatmulPreferenceCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        prefSet = function(linker, lib, "cublasLtMatmulPreferenceSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        heuristic = function(linker, lib, "cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        destroy = function(linker, lib, "cublasLtDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle create = function(linker, lib, "cublasLtCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MemorySegment h = arena.allocate(ADDRESS);
        device.makeCurrent();
        check("cublasLtCreate", invoke(create, h));
        handle = h.get(ADDRESS, 0);
        workspace = DeviceBuffer.allocate(device, WORKSPACE_BYTES);
        alpha = arena.allocate(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        alpha.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 1f);
        beta = arena.allocate(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        beta.set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 0f);
    }

    private static MethodHandle function(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        return linker.downcallHandle(lib.find(name).orElseThrow(() -> new IllegalStateException(LIBRARY + " has no " + name)), fd);
    }

    private static int invoke(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLASLt call failed: " + t, t);
        }
    }

    private static void check(String what, int status) {
        if (status != 0) {
            throw new IllegalStateException(what + " returned cublasStatus " + status);
        }
    }

    /**
     * Y[M, N] = X[M, K] · W[N, K]^T on the device's stream (asynchronous). {@code x} and {@code w} hold bf16,
     * {@code y} bf16 or fp32 as {@code out} says.
     */
    public void matmul(DeviceBuffer x, DeviceBuffer w, DeviceBuffer y, int m, int n, int k, Out out) {
        if (m <= 0 || n <= 0 || k <= 0) {
            throw new IllegalArgumentException("matmul shape " + m + " x " + n + " x " + k);
        }
        x.require("matmul", "x", 2L * m * k);
        w.require("matmul", "w", 2L * n * k);
        y.require("matmul", "y", (out == Out.F32 ? 4L : 2L) * m * n);
        Plan p = plans.computeIfAbsent(m + "x" + n + "x" + k + out, key -> plan(m, n, k, out));
        device.makeCurrent();
        MemorySegment ws = MemorySegment.ofAddress(Native.address(workspace.pointer()));
        check("cublasLtMatmul", invoke(matmul, handle, p.desc(), alpha, ptr(w), p.a(), ptr(x), p.b(), beta, ptr(y), p.c(), ptr(y), p.c(),
                p.algo(), ws, WORKSPACE_BYTES, MemorySegment.ofAddress(Native.address(device.stream()))));
    }

    private static MemorySegment ptr(DeviceBuffer b) {
        return MemorySegment.ofAddress(Native.address(b.pointer()));
    }


    /**
     * Column-major view: C[N, M] (ld N, the row-major Y) = op(A) · B with A = W as a K x N column-major matrix (ld K)
     * transposed, B = X as a K x M column-major matrix (ld K): the "TN" product cuBLAS serves best.
     */
    private Plan plan(int m, int n, int k, Out out) {
        MemorySegment slot = arena.allocate(ADDRESS);
        check("cublasLtMatmulDescCreate", invoke(descCreate, slot, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        MemorySegment desc = slot.get(ADDRESS, 0);
        MemorySegment op = arena.allocate(JAVA_INT);
        op.set(JAVA_INT, 0, OP_T);
        check("set TRANSA", invoke(descSet, desc, DESC_TRANSA, op, 4L));
        MemorySegment opN = arena.allocate(JAVA_INT);
        opN.set(JAVA_INT, 0, OP_N);
        check("set TRANSB", invoke(descSet, desc, DESC_TRANSB, opN, 4L));
        MemorySegment a = layout(CUDA_R_16BF, k, n, k);
        MemorySegment b = layout(CUDA_R_16BF, k, m, k);
        MemorySegment c = layout(out == Out.F32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n);
        check("cublasLtMatmulPreferenceCreate", invoke(prefCreate, slot));
        MemorySegment pref = slot.get(ADDRESS, 0);
        MemorySegment wsBytes = arena.allocate(JAVA_LONG);
        wsBytes.set(JAVA_LONG, 0, WORKSPACE_BYTES);
        check("set MAX_WORKSPACE_BYTES", invoke(prefSet, pref, PREF_MAX_WORKSPACE_BYTES, wsBytes, 8L));
        MemorySegment result = arena.allocate(HEURISTIC_RESULT_BYTES, 16);
        MemorySegment count = arena.allocate(JAVA_INT);
        check("cublasLtMatmulAlgoGetHeuristic", invoke(heuristic, handle, desc, a, b, c, c, pref, 1, result, count));
        if (count.get(JAVA_INT, 0) == 0) {
            throw new IllegalStateException("cuBLASLt has no algorithm for " + m + " x " + n + " x " + k + " (" + out + ")");
        }
        return new Plan(desc, a, b, c, result.asSlice(0, 64));
    }

    private MemorySegment layout(int type, long rows, long cols, long ld) {
        MemorySegment slot = arena.allocate(ADDRESS);
        check("cublasLtMatrixLayoutCreate", invoke(layoutCreate, slot, type, rows, cols, ld));
        return slot.get(ADDRESS, 0);
    }

    @Override
    public void close() {
        device.makeCurrent();
        invoke(destroy, handle);
        workspace.close();
        arena.close();
    }
}
