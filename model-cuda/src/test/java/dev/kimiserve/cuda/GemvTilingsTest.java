package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The GEMV settings: kimi.cuda.gemv (a default tiling, per-shape choices) and kimi.cuda.moe-columns; clear errors. */
class GemvTilingsTest {
    @Test
    void aDefaultAndPerShapeChoices() {
        GemvTilings t = GemvTilings.parse("c1w4, 2304x4096:c2w4,4096x128:c2w1,256x2304:warp");
        assertEquals("c1w4", t.forShape(12576, 2304).name());
        assertEquals("c2w4", t.forShape(2304, 4096).name());
        assertEquals("c2w1", t.forShape(4096, 128).name());
        assertNull(t.forShape(256, 2304), "warp: engine.cu's kernel");
        assertEquals("c1w4", t.forShape(4096, 2304).name(), "N and K are not interchangeable");
        assertNull(GemvTilings.parse("warp").forShape(10, 10));
    }

    @Test
    void expertColumnsAreMultiplesOfSixteen() {
        assertEquals(32, EngineKernels.moeColumns(null));
        assertEquals(16, EngineKernels.moeColumns(" 16 "));
        for (String bad : new String[]{"0", "24", "-16", "x"}) {
            assertThrows(IllegalArgumentException.class, () -> EngineKernels.moeColumns(bad), bad);
        }
    }

    @Test
    void badEntriesNameTheSettingAndTheEntry() {
        for (String bad : new String[]{"c9w9", "c1w4,2304:c2w4", "c1w4,2304x4096", "c1w4,axb:c1w4", "c1w4,2304x4096:tc", "tc"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GemvTilings.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("kimi.cuda.gemv: "), e.getMessage());
        }
    }
}
