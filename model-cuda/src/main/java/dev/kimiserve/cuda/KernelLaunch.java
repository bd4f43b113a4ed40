package dev.kimiserve.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import jcuda.CudaException;
import jcuda.driver.CUfunction;
import jcuda.driver.CUresult;

/**
 * Kernel launches on a device's stream through the driver's {@code cuLaunchKernelEx}, called with Java's FFM (JCuda
 * 12.6 has no binding for it). An overlapped launch carries CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
 * the kernel may start while the kernel before it in the stream still runs, so it must wait ({@code griddepcontrol.wait},
 * the kernels' {@code begin_in_order()}) before it touches anything that kernel writes; every kernel of engine.cu,
 * gemv.cu and kda_decode.cu does. Stream capture keeps the attribute, so the decode graphs overlap too.
 * <p>
 * Arguments in the kernel's order: a {@link DeviceBuffer} (its address; null passes a null pointer), Integer, Long or
 * Float.
 */
final class KernelLaunch {
    private static final int PROGRAMMATIC_STREAM_SERIALIZATION = 6;  // CUlaunchAttributeID
    private static final long CONFIG_BYTES = 56;                       // CUlaunchConfig: 7 uint, stream @32, attrs @40, numAttrs @48
    private static final long ATTRIBUTE_BYTES = 72;                    // CUlaunchAttribute: id, pad to 8, 64-byte value
    private static final MethodHandle LAUNCH_EX = Linker.nativeLinker().downcallHandle(
            SymbolLookup.libraryLookup("libcuda.so.1", Arena.global()).find("cuLaunchKernelEx")
                    .orElseThrow(() -> new UnsatisfiedLinkError("libcuda.so.1 has no cuLaunchKernelEx (needs a CUDA 11.8+ driver)")),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

    private KernelLaunch() {
    }

    /**
     * Whether overlapped launches are safe on this device: the kernels' waits are in their sm_90 machine code; any other
     * card runs the compute_80 PTX, which has none, so it must launch in plain stream order.
     */
    static boolean overlapSupported(CudaDevice device) {
        return device.computeCapability() == 90;
    }

    /** Launches {@code f} on the device's stream (the calling thread must have the device's context current). */
    static void launch(CudaDevice device, CUfunction f, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes,
                       boolean overlap, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment values = arena.allocate(8L * Math.max(1, args.length), 8);
            MemorySegment params = arena.allocate(ADDRESS.byteSize() * Math.max(1, args.length), 8);
            for (int i = 0; i < args.length; i++) {
                long at = 8L * i;
                switch (args[i]) {
                    case null -> values.set(JAVA_LONG, at, 0L);
                    case DeviceBuffer b -> values.set(JAVA_LONG, at, Native.address(b.pointer()));
                    case Integer v -> values.set(JAVA_INT, at, v);
                    case Long v -> values.set(JAVA_LONG, at, v);
                    case Float v -> values.set(JAVA_FLOAT, at, v);
                    default -> throw new IllegalArgumentException("kernel argument " + i + " of type " + args[i].getClass());
                }
                params.setAtIndex(ADDRESS, i, values.asSlice(at));
            }
            MemorySegment config = arena.allocate(CONFIG_BYTES, 8);
            int[] dims = {gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes};
            for (int i = 0; i < dims.length; i++) {
                config.set(JAVA_INT, 4L * i, dims[i]);
            }
            config.set(JAVA_LONG, 32, Native.address(device.stream()));
            if (overlap) {
                MemorySegment attribute = arena.allocate(ATTRIBUTE_BYTES, 8);
                attribute.set(JAVA_INT, 0, PROGRAMMATIC_STREAM_SERIALIZATION);
                attribute.set(JAVA_INT, 8, 1);                         // programmaticStreamSerializationAllowed
                config.set(ADDRESS, 40, attribute);
                config.set(JAVA_INT, 48, 1);
            }
            int result = (int) LAUNCH_EX.invokeExact(config, MemorySegment.ofAddress(Native.address(f)), params, MemorySegment.NULL);
            if (result != CUresult.CUDA_SUCCESS) {
                throw new CudaException("cuLaunchKernelEx: " + CUresult.stringFor(result) + " (grid " + gridX + "x" + gridY + "x" + gridZ
                        + ", block " + blockX + "x" + blockY + "x" + blockZ + ", shared " + sharedBytes + " bytes)");
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuLaunchKernelEx could not be called", t);
        }
    }
}
