package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;

import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;

/**
 * The integer inputs of one forward pass, built on the host and copied to the device in one upload: token ids, the
 * segments (first row, rows, state slot of each sequence), each row's sequence, position and latent-cache row, and the
 * page table [segments][width] (width rounded up to a power of two, so few decode graphs are needed). The buffer is
 * reused; when it must grow, {@code beforeGrowing} runs first (graphs that point into it are dropped). The ints go
 * through pinned staging memory, so the copy is queued on the stream and the host does not wait for it (a decode step's
 * kernels follow right behind it); two staging slots, so an upload never overwrites one still being copied.
 */
final class DeviceBatch implements AutoCloseable {
    /** Views of one upload; {@code decode}: one row per sequence (the decode kernels and split attention apply). */
    record View(boolean decode, int[] counts, DeviceBuffer ids, DeviceBuffer segStart, DeviceBuffer segCount, DeviceBuffer segSlot,
                DeviceBuffer tokSeg, DeviceBuffer tokPos, DeviceBuffer dstRow, DeviceBuffer pageTable, int maxPages) {
    }

    private final CudaDevice device;
    private final EngineKernels kernels;
    private final Runnable beforeGrowing;
    private DeviceBuffer ints;
    private final Pointer[] staging = {new Pointer(), new Pointer()};
    private final MemorySegment[] stagingInts = new MemorySegment[2];
    private final CUevent[] staged = {new CUevent(), new CUevent()};   // the slot's last copy is done
    private long stagingBytes;
    private int nextSlot;

    DeviceBatch(CudaDevice device, EngineKernels kernels, int initialInts, Runnable beforeGrowing) {
        this.device = device;
        this.kernels = kernels;
        this.beforeGrowing = beforeGrowing;
        this.ints = DeviceBuffer.allocate(device, 4L * initialInts);
        for (CUevent e : staged) {
            cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
        allocateStaging(4L * initialInts);
    }

    private void allocateStaging(long bytes) {
        for (int i = 0; i < 2; i++) {
            cuMemAllocHost(staging[i], bytes);
            stagingInts[i] = MemorySegment.ofBuffer(staging[i].getByteBuffer(0, bytes));
        }
        stagingBytes = bytes;
    }

    private void freeStaging() {
        for (Pointer p : staging) {
            cuMemFreeHost(p);
        }
    }

    /**
     * @param pages   each sequence's latent-cache page ids (empty lists for a model without MLA)
     * @param decode  whether this is a decode step
     */
    View upload(int[] tokens, SequenceState[] seqs, int[] counts, int[] slotOf, List<List<Integer>> pages, boolean decode) {
        int rows = tokens.length;
        int segs = seqs.length;
        int widest = 1;
        for (List<Integer> p : pages) {
            widest = Math.max(widest, p.size());
        }
        int maxPages = Integer.highestOneBit(widest - 1) << 1 == 0 ? 1 : Integer.highestOneBit(widest - 1) << 1;
        int ids = 0;
        int segStart = rows, segCount = segStart + segs, segSlot = segCount + segs;
        int tokSeg = segSlot + segs, tokPos = tokSeg + rows, dstRow = tokPos + rows;
        int table = dstRow + rows;
        int[] all = new int[table + segs * maxPages];
        System.arraycopy(tokens, 0, all, ids, rows);
        int row = 0;
        for (int i = 0; i < segs; i++) {
            all[segStart + i] = row;
            all[segCount + i] = counts[i];
            all[segSlot + i] = slotOf[i];
            List<Integer> p = pages.get(i);
            for (int j = 0; j < p.size(); j++) {
                all[table + i * maxPages + j] = p.get(j);
            }
            for (int t = 0; t < counts[i]; t++, row++) {
                int pos = (int) seqs[i].position() + t;
                all[tokSeg + row] = i;
                all[tokPos + row] = pos;
                all[dstRow + row] = p.isEmpty() ? 0 : p.get(pos / MlaCache.PAGE_TOKENS) * MlaCache.PAGE_TOKENS + pos % MlaCache.PAGE_TOKENS;
            }
        }
        if (ints.bytes() < 4L * all.length) {
            device.synchronize();
            beforeGrowing.run();
            ints.close();
            ints = DeviceBuffer.allocate(device, 8L * all.length);
        }
        if (stagingBytes < 4L * all.length) {
            device.synchronize();
            freeStaging();
            allocateStaging(8L * all.length);
        }
        int slot = nextSlot;
        nextSlot ^= 1;
        cuEventSynchronize(staged[slot]);                                  // its copy two uploads ago (long done, normally)
        MemorySegment.copy(all, 0, stagingInts[slot], ValueLayout.JAVA_INT, 0, all.length);
        kernels.timed("ints_to_device", () -> cuMemcpyHtoDAsync(ints.pointer(), staging[slot], 4L * all.length, device.stream()));
        cuEventRecord(staged[slot], device.stream());
        return new View(decode, counts, slice(ids, rows), slice(segStart, segs), slice(segCount, segs), slice(segSlot, segs),
                slice(tokSeg, rows), slice(tokPos, rows), slice(dstRow, rows), slice(table, segs * maxPages), maxPages);
    }

    private DeviceBuffer slice(int at, int count) {
        return ints.slice(4L * at, 4L * count);
    }

    @Override
    public void close() {
        device.makeCurrent();
        device.synchronize();
        ints.close();
        freeStaging();
        for (CUevent e : staged) {
            cuEventDestroy(e);
        }
    }
}
