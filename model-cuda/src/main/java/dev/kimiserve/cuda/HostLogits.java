package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * Logits from the device into a Java array [rows, vocab] through pinned host memory, in column parts: the producer
 * writes part p as its own block [rows, columns of p] at float offset {@code rows * columnStart(p)} and marks it done on
 * the compute stream ({@link #partDone}); a copy stream moves each block to pinned memory as soon as it is done, and
 * host threads copy it into the array while later parts are still computed or copied. The driver's own copy into a
 * Java array (pageable memory) runs at 7-11 GB/s and starts only after the whole lm_head.
 */
final class HostLogits implements AutoCloseable {
    /** Column parts of a step's logits (fewer for a small vocabulary); the last part's copy is the only one not hidden. */
    static final int MAX_PARTS = 8;
    private static final int MIN_PART_COLUMNS = 64;
    /** Rows per host copy task: one thread copies ~10 GB/s, several keep up with the device-to-host copy. */
    private static final int ROWS_PER_TASK = 4;

    private final CudaDevice device;
    private final int vocab;
    private final int capacityRows;
    private final int parts;
    private final Pointer pinned = new Pointer();
    private final MemorySegment host;                           // the pinned memory, laid out as the device's blocks
    private final CUstream copies = new CUstream();
    private final CUevent[] computed = new CUevent[MAX_PARTS];  // part p written on the compute stream
    private final CUevent[] copied = new CUevent[MAX_PARTS];    // part p in pinned memory
    private final ExecutorService copiers;

    HostLogits(CudaDevice device, int capacityRows, int vocab) {
        this.device = device;
        this.vocab = vocab;
        this.capacityRows = capacityRows;
        this.parts = Math.clamp(vocab / MIN_PART_COLUMNS, 1, MAX_PARTS);
        device.makeCurrent();
        long bytes = 4L * capacityRows * vocab;
        cuMemAllocHost(pinned, bytes);
        this.host = MemorySegment.ofBuffer(pinned.getByteBuffer(0, bytes));
        cuStreamCreate(copies, CUstream_flags.CU_STREAM_NON_BLOCKING);
        for (int p = 0; p < MAX_PARTS; p++) {
            computed[p] = new CUevent();
            copied[p] = new CUevent();
            cuEventCreate(computed[p], CUevent_flags.CU_EVENT_DISABLE_TIMING);
            cuEventCreate(copied[p], CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
        int threads = Math.clamp(Runtime.getRuntime().availableProcessors() / 2, 1, 4);
        copiers = Executors.newFixedThreadPool(threads, Thread.ofPlatform().daemon().name("logits-copy-", 0).factory());
    }

    /** How many column parts a producer writes and marks. */
    int parts() {
        return parts;
    }

    /** The first column of part {@code p}; {@code columnStart(parts()) == vocab}. */
    int columnStart(int p) {
        return (int) ((long) vocab * p / parts);
    }

    /** Part {@code p} is written once the compute stream gets here (call in part order, right after its launch). */
    void partDone(int p) {
        cuEventRecord(computed[p], device.stream());
    }

    /**
     * Copies {@code rows} rows of logits from {@code blocks} (the parts' blocks, every part marked done) into
     * {@code out[offset ..]} as [rows, vocab]. Returns when all are in.
     */
    void download(DeviceBuffer blocks, int rows, float[] out, int offset) {
        if (rows > capacityRows) {
            throw new IllegalArgumentException(rows + " logit rows exceed the pinned buffer's " + capacityRows);
        }
        blocks.require("logits_to_host", "logits", 4L * rows * vocab);
        for (int p = 0; p < parts; p++) {
            long from = 4L * rows * columnStart(p);
            cuStreamWaitEvent(copies, computed[p], 0);
            cuMemcpyDtoHAsync(pinned.withByteOffset(from), blocks.pointer().withByteOffset(from), 4L * rows * (columnStart(p + 1) - columnStart(p)),
                    copies);
            cuEventRecord(copied[p], copies);
        }
        List<Future<?>> pending = new ArrayList<>();
        try {
            for (int p = 0; p < parts; p++) {
                cuEventSynchronize(copied[p]);
                int c0 = columnStart(p);
                int width = columnStart(p + 1) - c0;
                for (int r0 = ROWS_PER_TASK; r0 < rows; r0 += ROWS_PER_TASK) {     // rows past the first task on the pool
                    int first = r0;
                    pending.add(copiers.submit(() -> copyRows(first, Math.min(rows, first + ROWS_PER_TASK), rows, c0, width, out, offset)));
                }
                copyRows(0, Math.min(rows, ROWS_PER_TASK), rows, c0, width, out, offset);
            }
            for (Future<?> f : pending) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while copying logits to the host", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("copying logits to the host failed", e.getCause());
        } finally {
            pending.forEach(f -> f.cancel(false));
        }
    }

    /** Rows [r0, r1) of one part's block (rows x width, first column c0) into their places in out. */
    private void copyRows(int r0, int r1, int rows, int c0, int width, float[] out, int offset) {
        long block = 4L * rows * c0;
        for (int r = r0; r < r1; r++) {
            MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, block + 4L * r * width, out, offset + r * vocab + c0, width);
        }
    }

    @Override
    public void close() {
        device.makeCurrent();
        cuStreamSynchronize(copies);
        for (int p = 0; p < MAX_PARTS; p++) {
            cuEventDestroy(computed[p]);
            cuEventDestroy(copied[p]);
        }
        cuStreamDestroy(copies);
        cuMemFreeHost(pinned);
        copiers.shutdownNow();
    }
}
