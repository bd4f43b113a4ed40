package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import java.lang.System.Logger.Level;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * One GPU through the CUDA driver API: its primary context (shared with anything else in the process that uses the
 * device, as the runtime API does), one non-blocking stream, and what the kernels need to know about the chip.
 * Every driver call throws {@link jcuda.CudaException} on failure (JCuda's exceptions are switched on here).
 */
public final class CudaDevice implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(CudaDevice.class.getName());
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUstream stream = new CUstream();
    private final String name;
    private final int multiprocessors;
    private final int computeCapability;
    private final long l2Bytes;

    private CudaDevice(int ordinal) {
        JCudaDriver.setExceptionsEnabled(true);
        cuInit(0);
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING);
        byte[] raw = new byte[256];
        cuDeviceGetName(raw, raw.length, device);
        String n = new String(raw, java.nio.charset.StandardCharsets.US_ASCII);
        this.name = n.substring(0, n.indexOf('\0') < 0 ? n.length() : n.indexOf('\0'));
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.computeCapability = 10 * attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.l2Bytes = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
        LOG.log(Level.INFO, "cuda device " + ordinal + ": " + name + ", sm_" + computeCapability + ", " + multiprocessors + " SMs");
    }

    /** Opens GPU {@code ordinal}; throws {@link CudaUnavailableException} saying why when there is none to use. */
    public static CudaDevice open(int ordinal) {
        String why = unavailableReason();
        if (why != null) {
            throw new CudaUnavailableException(why);
        }
        return new CudaDevice(ordinal);
    }

    /** Why the driver library could not be loaded, once known (a failed class initialisation is not retried). */
    private static volatile String linkFailure;

    /** Null when a CUDA device can be used here, else why not (no driver library, no device, ...). */
    public static String unavailableReason() {
        if (linkFailure != null) {
            return linkFailure;
        }
        try {
            JCudaDriver.setExceptionsEnabled(true);
            cuInit(0);
            int[] count = new int[1];
            cuDeviceGetCount(count);
            return count[0] == 0 ? "the CUDA driver reports no device" : null;
        } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
            linkFailure = "the CUDA driver library cannot be loaded (" + firstLine(e.getMessage()) + ")";
            return linkFailure;
        } catch (RuntimeException e) {
            return "the CUDA driver failed to initialise (" + firstLine(e.getMessage()) + ")";
        }
    }

    private static String firstLine(String s) {
        return s == null ? "no message" : s.lines().findFirst().orElse(s);
    }

    private int attribute(int attribute) {
        int[] v = new int[1];
        cuDeviceGetAttribute(v, attribute, device);
        return v[0];
    }

    /** Makes this device's context current on the calling thread (each thread that launches or copies must). */
    public void makeCurrent() {
        cuCtxSetCurrent(context);
    }

    public CUstream stream() {
        return stream;
    }

    public void synchronize() {
        cuStreamSynchronize(stream);
    }

    public String name() {
        return name;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    public int computeCapability() {
        return computeCapability;
    }

    public long l2Bytes() {
        return l2Bytes;
    }

    @Override
    public void close() {
        makeCurrent();
        cuCtxSynchronize();
        cuStreamDestroy(stream);
        cuDevicePrimaryCtxRelease(device);
    }
}
