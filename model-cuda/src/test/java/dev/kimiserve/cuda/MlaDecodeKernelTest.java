package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Absorbed MLA decode on the GPU against a double-precision softmax attention over the same bf16 values. */
class MlaDecodeKernelTest extends GpuTest {
    static final int H = MlaDecodeKernel.HEADS;
    static final int W = MlaDecodeKernel.WIDTH;
    static final int C = MlaDecodeKernel.LATENT;

    /**
     * Ragged lengths across chunk and page edges, pages scattered through the pool, mild and sharp score scales; then
     * one sequence alone (the kernel's batch-1 path).
     */
    @Test
    void matchesReferenceAttentionOverPagedCaches() {
        MlaDecodeKernel kernel = new MlaDecodeKernel(device, module("mla_decode"));
        check(kernel, new int[]{1, 31, 33, 64, 65, 200, 1000});
        check(kernel, new int[]{1000});
    }

    private void check(MlaDecodeKernel kernel, int[] lens) {
        int batch = lens.length;
        int maxLen = Arrays.stream(lens).max().orElseThrow();
        for (double qScale : new double[]{0.05, 0.4}) {
            SplittableRandom rnd = new SplittableRandom((long) (qScale * 1000));
            int maxPages = (maxLen + 63) / 64;
            int poolPages = batch * maxPages + 3;
            List<Integer> free = new ArrayList<>();
            for (int p = 0; p < poolPages; p++) {
                free.add(p);
            }
            Collections.shuffle(free, new java.util.Random(3));
            int[] pages = new int[batch * maxPages];
            for (int i = 0; i < pages.length; i++) {
                pages[i] = free.get(i);
            }
            short[] pool = randomBf16(rnd, poolPages * 64 * W, 1.0);
            short[] q = randomBf16(rnd, batch * H * W, qScale);
            double[] want = new double[batch * H * C];
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < H; h++) {
                    double[] s = new double[lens[b]];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int t = 0; t < lens[b]; t++) {
                        int row = pages[b * maxPages + t / 64] * 64 + t % 64;
                        double acc = 0;
                        for (int i = 0; i < W; i++) {
                            acc += (double) bf16(q[(b * H + h) * W + i]) * bf16(pool[row * W + i]);
                        }
                        s[t] = acc;
                        mx = Math.max(mx, acc);
                    }
                    double denom = 0;
                    for (int t = 0; t < lens[b]; t++) {
                        s[t] = Math.exp(s[t] - mx);
                        denom += s[t];
                    }
                    for (int t = 0; t < lens[b]; t++) {
                        int row = pages[b * maxPages + t / 64] * 64 + t % 64;
                        for (int c = 0; c < C; c++) {
                            want[(b * H + h) * C + c] += s[t] / denom * bf16(pool[row * W + c]);
                        }
                    }
                }
            }
            // blocks: one (every sequence in turn), three (shares crossing sequences), the default and 40 (more blocks
            // than the chunks, 26 and 16: blocks with no share; for one sequence the combine's eight-warp form)
            for (int splits : new int[]{1, 3, kernel.splitsFor(batch, maxLen), 40}) {
                try (DeviceBuffer dq = DeviceBuffer.of(device, q); DeviceBuffer dPool = DeviceBuffer.of(device, pool);
                     DeviceBuffer dPages = DeviceBuffer.of(device, pages); DeviceBuffer dLens = DeviceBuffer.of(device, lens);
                     DeviceBuffer ws = DeviceBuffer.allocate(device, MlaDecodeKernel.workspaceBytes(batch, splits));
                     DeviceBuffer z = DeviceBuffer.allocate(device, 4L * batch * H * C)) {
                    z.fill(Float.NaN);
                    ws.fill(Float.NaN);
                    kernel.launch(batch, dq, dPool, dPages, maxPages, dLens, splits, ws, z);
                    device.synchronize();
                    float[] got = new float[batch * H * C];
                    z.download(got);
                    for (int b = 0; b < batch; b++) {
                        double num = 0;
                        double den = 0;
                        for (int i = b * H * C; i < (b + 1) * H * C; i++) {
                            num += (got[i] - want[i]) * (got[i] - want[i]);
                            den += want[i] * want[i];
                        }
                        double err = Math.sqrt(num / den);
                        assertTrue(err < 5e-3, batch + " sequences, q scale " + qScale + ", splits " + splits + ", sequence " + b + " (len " + lens[b]
                                + "): rel RMS " + err);
                    }
                }
            }
        }
    }
}
