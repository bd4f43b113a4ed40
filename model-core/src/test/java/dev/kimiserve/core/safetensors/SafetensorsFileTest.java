package dev.kimiserve.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors reader on good files and on every kind of broken header we promise to name. */
class SafetensorsFileTest {
    @TempDir
    Path dir;

    @Test
    void roundTripsF32I64Bf16AndF16() throws IOException {
        Path file = dir.resolve("a.safetensors");
        float[] f = {1.5f, -2.25f, 3f, 0f, 1e-3f, 7f};
        new SafetensorsWriter().metadata("format", "pt")
                .addF32("x", new long[]{2, 3}, f)
                .addI64("ids", new long[]{3}, new long[]{5, 9, 163839})
                .add("h", DType.BF16, new long[]{2}, out -> SafetensorsWriter.writeAll(out, le(new short[]{(short) 0x3FC0, (short) 0xC010})))
                .add("half", DType.F16, new long[]{1}, out -> SafetensorsWriter.writeAll(out, le(new short[]{Float.floatToFloat16(0.5f)})))
                .write(file);
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals("pt", st.metadata().get("format"));
            assertArrayEquals(f, st.tensor("x").toFloatArray());
            assertArrayEquals(new long[]{2, 3}, st.tensor("x").shape());
            assertArrayEquals(new long[]{5, 9, 163839}, st.tensor("ids").toLongArray());
            assertArrayEquals(new float[]{1.5f, -2.25f}, st.tensor("h").toFloatArray());
            assertEquals(0.5f, st.tensor("half").getFloat(0));
            Tensor rows = st.tensor("x").slice("x[1:]", 1, 2);
            assertArrayEquals(new float[]{0f, 1e-3f, 7f}, rows.toFloatArray());
        }
    }

    @Test
    void truncatedFileNamesTheTensorPastTheEnd() throws IOException {
        Path file = dir.resolve("t.safetensors");
        new SafetensorsWriter().addF32("a", new long[]{4}, new float[4]).addF32("b", new long[]{100}, new float[100]).write(file);
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length - 10));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().contains("t.safetensors") && e.getMessage().contains("'b'") && e.getMessage().contains("past the end"), e.getMessage());
    }

    @Test
    void headerOffsetPastTheEndIsNamed() throws IOException {
        Path file = raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"far\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1000000,1000008]}}", 16);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().contains("'far'") && e.getMessage().contains("past the end"), e.getMessage());
    }

    @Test
    void unknownDtypeIsNamed() throws IOException {
        Path file = raw("{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("unknown dtype 'Q4_K'"), e.getMessage());
    }

    @Test
    void shapeThatDisagreesWithTheByteRangeIsNamed() throws IOException {
        Path file = raw("{\"w\":{\"dtype\":\"BF16\",\"shape\":[4,4],\"data_offsets\":[0,16]}}", 16);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("needs 32 bytes"), e.getMessage());
    }

    @Test
    void overlappingTensorsAreNamed() throws IOException {
        Path file = raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().contains("'a'") && e.getMessage().contains("'b'") && e.getMessage().contains("overlap"), e.getMessage());
    }

    @Test
    void absurdHeaderLengthAndGarbageAreRefused() throws IOException {
        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[]{1, 2, 3});
        assertTrue(assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(tiny)).getMessage().contains("too short"));
        Path huge = dir.resolve("huge.safetensors");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MAX_VALUE);
        Files.write(huge, b.array());
        assertTrue(assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(huge)).getMessage().contains("header length"));
        Path notJson = raw("this is not json at all", 0);
        assertTrue(assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(notJson)).getMessage().contains("not valid JSON"));
        Path badOffsets = raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 8);
        assertTrue(assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(badOffsets)).getMessage().contains("'w'"));
    }

    @Test
    void readsAfterCloseFailInsteadOfCrashing() throws IOException {
        Path file = dir.resolve("c.safetensors");
        new SafetensorsWriter().addF32("x", new long[]{2}, new float[]{1, 2}).write(file);
        SafetensorsFile st = SafetensorsFile.open(file);
        Tensor x = st.tensor("x");
        st.close();
        assertThrows(IllegalStateException.class, () -> x.getFloat(0));
    }

    private Path raw(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path file = Files.createTempFile(dir, "raw", ".safetensors");
        Files.write(file, b.array());
        return file;
    }

    private static ByteBuffer le(short[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (short s : v) {
            b.putShort(s);
        }
        return b.flip();
    }
}
