package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/**
 * A block of device memory. Buffers are made up front (weights, state pools, scratch) and never in a decode loop;
 * {@link #slice} hands out views of a larger one. Copies run on the device's stream; the host array must stay
 * untouched until the stream is synchronized.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final CudaDevice device;
    private final CUdeviceptr base;
    private final CUdeviceptr pointer;
    private final long bytes;
    private final boolean owner;

    private DeviceBuffer(CudaDevice device, CUdeviceptr base, CUdeviceptr pointer, long bytes, boolean owner) {
        this.device = device;
        this.base = base;
        this.pointer = pointer;
        this.bytes = bytes;
        this.owner = owner;
    }

    public static DeviceBuffer allocate(CudaDevice device, long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("a device buffer needs a positive size, not " + bytes);
        }
        device.makeCurrent();
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, bytes);
        return new DeviceBuffer(device, p, p, bytes, true);
    }

    public static DeviceBuffer of(CudaDevice device, float[] values) {
        DeviceBuffer b = allocate(device, 4L * values.length);
        b.upload(values);
        return b;
    }

    public static DeviceBuffer of(CudaDevice device, int[] values) {
        DeviceBuffer b = allocate(device, 4L * values.length);
        b.upload(values, values.length);
        return b;
    }

    /** bf16 (or any 16-bit) values. */
    public static DeviceBuffer of(CudaDevice device, short[] values) {
        DeviceBuffer b = allocate(device, 2L * values.length);
        b.upload(values, values.length);
        return b;
    }

    /** Copies the first {@code into.length} 16-bit values out and waits. */
    public void download(short[] into) {
        check(2L * into.length);
        device.makeCurrent();
        cuMemcpyDtoHAsync(Pointer.to(into), pointer, 2L * into.length, device.stream());
        device.synchronize();
    }

    /** The bytes [offset, offset + length) of this buffer, sharing its memory. */
    public DeviceBuffer slice(long offset, long length) {
        if (offset < 0 || length <= 0 || offset + length > bytes) {
            throw new IllegalArgumentException("slice [" + offset + ", " + (offset + length) + ") of a " + bytes + "-byte buffer");
        }
        return new DeviceBuffer(device, base, pointer.withByteOffset(offset), length, false);
    }

    public CUdeviceptr pointer() {
        return pointer;
    }

    public long bytes() {
        return bytes;
    }

    /** Copies values in and waits (for setup and tests; the hot path keeps data on the device). */
    public void upload(float[] values) {
        check(4L * values.length);
        device.makeCurrent();
        cuMemcpyHtoDAsync(pointer, Pointer.to(values), 4L * values.length, device.stream());
        device.synchronize();
    }

    /** Copies int values in and waits. */
    public void upload(int[] values, int count) {
        check(4L * count);
        device.makeCurrent();
        cuMemcpyHtoDAsync(pointer, Pointer.to(values), 4L * count, device.stream());
        device.synchronize();
    }

    /** Copies 16-bit values in and waits. */
    public void upload(short[] values, int count) {
        check(2L * count);
        device.makeCurrent();
        cuMemcpyHtoDAsync(pointer, Pointer.to(values), 2L * count, device.stream());
        device.synchronize();
    }

    /** Copies the bytes of {@code src} (a mapped checkpoint region, say) in, at most 1 GiB per copy, and waits. */
    public void upload(java.lang.foreign.MemorySegment src) {
        check(src.byteSize());
        device.makeCurrent();
        long step = 1L << 30;
        for (long at = 0; at < src.byteSize(); at += step) {
            long n = Math.min(step, src.byteSize() - at);
            cuMemcpyHtoDAsync(pointer.withByteOffset(at), Pointer.to(src.asSlice(at, n).asByteBuffer()), n, device.stream());
            device.synchronize();
        }
    }

    /** Copies the first {@code count} floats out into {@code into[offset ..]} and waits. */
    public void download(float[] into, int offset, int count) {
        check(4L * count);
        device.makeCurrent();
        cuMemcpyDtoHAsync(Pointer.to(into).withByteOffset(4L * offset), pointer, 4L * count, device.stream());
        device.synchronize();
    }

    /** Copies the first {@code into.length} ints out and waits. */
    public void download(int[] into) {
        check(4L * into.length);
        device.makeCurrent();
        cuMemcpyDtoHAsync(Pointer.to(into), pointer, 4L * into.length, device.stream());
        device.synchronize();
    }

    /** Copies the first {@code into.length} floats out and waits. */
    public void download(float[] into) {
        check(4L * into.length);
        device.makeCurrent();
        cuMemcpyDtoHAsync(Pointer.to(into), pointer, 4L * into.length, device.stream());
        device.synchronize();
    }

    /** Sets every 32-bit word to the bits of {@code value} (asynchronously). */
    public void fill(float value) {
        device.makeCurrent();
        cuMemsetD32Async(pointer, Float.floatToRawIntBits(value), bytes / 4, device.stream());
    }

    /** Fails, naming the kernel and the argument, when this buffer holds fewer than {@code need} bytes. */
    public DeviceBuffer require(String kernel, String argument, long need) {
        if (bytes < need) {
            throw new IllegalArgumentException(kernel + ": " + argument + " holds " + bytes + " bytes, needs " + need);
        }
        return this;
    }

    private void check(long need) {
        if (need > bytes) {
            throw new IllegalArgumentException(need + " bytes do not fit a " + bytes + "-byte device buffer");
        }
    }

    @Override
    public void close() {
        if (owner) {
            device.makeCurrent();
            cuMemFree(base);
        }
    }
}
