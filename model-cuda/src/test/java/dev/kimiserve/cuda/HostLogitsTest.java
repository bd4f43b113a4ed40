package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * HostLogits puts every part's block [rows, columns] in its place of the [rows, vocab] array, for uneven part widths,
 * one row and more rows than a host copy task takes, twice in a row with new values (no stale pinned data), and
 * leaves the array outside its rows untouched.
 */
class HostLogitsTest extends GpuTest {
    @ParameterizedTest(name = "{0} rows, vocab {1}")
    @CsvSource({"1, 163840", "5, 1000", "64, 4099", "3, 100"})
    void blocksLandInTheirRowsAndColumns(int rows, int vocab) {
        try (HostLogits logits = new HostLogits(device, 64, vocab); DeviceBuffer blocks = DeviceBuffer.allocate(device, 4L * rows * vocab)) {
            for (int call = 0; call < 2; call++) {
                float[] expected = KdaInputs.normal(new SplittableRandom(31L * rows + vocab + call), rows * vocab);
                float[] device = new float[rows * vocab];                    // the same values in the parts' layout
                for (int p = 0; p < logits.parts(); p++) {
                    int c0 = logits.columnStart(p);
                    int width = logits.columnStart(p + 1) - c0;
                    for (int r = 0; r < rows; r++) {
                        System.arraycopy(expected, r * vocab + c0, device, rows * c0 + r * width, width);
                    }
                }
                blocks.upload(device);
                for (int p = 0; p < logits.parts(); p++) {
                    logits.partDone(p);
                }
                int offset = 7;
                float[] out = new float[offset + rows * vocab + 5];
                Arrays.fill(out, Float.NaN);
                logits.download(blocks, rows, out, offset);
                for (int i = 0; i < rows * vocab; i++) {
                    assertEquals(expected[i], out[offset + i], "row " + i / vocab + ", column " + i % vocab + " (call " + call + ")");
                }
                for (int i : new int[]{0, offset - 1, offset + rows * vocab, out.length - 1}) {
                    assertEquals(Float.NaN, out[i], "element " + i + " outside the rows was written");
                }
            }
            assertThrows(IllegalArgumentException.class, () -> logits.download(blocks, 65, new float[65 * vocab], 0));
        }
    }
}
