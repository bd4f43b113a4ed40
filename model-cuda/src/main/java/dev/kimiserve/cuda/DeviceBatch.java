package dev.kimiserve.cuda;

import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import java.util.List;

/**
 * The integer inputs of one forward pass, built on the host and copied to the device in one upload: token ids, the
 * segments (first row, rows, state slot of each sequence), each row's sequence, position and latent-cache row, and the
 * page table [segments][width] (width rounded up to a power of two, so few decode graphs are needed). The buffer is
 * reused; when it must grow, {@code beforeGrowing} runs first (graphs that point into it are dropped).
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

    DeviceBatch(CudaDevice device, EngineKernels kernels, int initialInts, Runnable beforeGrowing) {
        this.device = device;
        this.kernels = kernels;
        this.beforeGrowing = beforeGrowing;
        this.ints = DeviceBuffer.allocate(device, 4L * initialInts);
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
        kernels.timed("ints_to_device", () -> ints.upload(all, all.length));
        return new View(decode, counts, slice(ids, rows), slice(segStart, segs), slice(segCount, segs), slice(segSlot, segs),
                slice(tokSeg, rows), slice(tokPos, rows), slice(dstRow, rows), slice(table, segs * maxPages), maxPages);
    }

    private DeviceBuffer slice(int at, int count) {
        return ints.slice(4L * at, 4L * count);
    }

    @Override
    public void close() {
        ints.close();
    }
}
