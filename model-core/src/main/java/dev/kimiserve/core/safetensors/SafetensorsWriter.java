package dev.kimiserve.core.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a safetensors file: tensors are added with their dtype and shape and a source that streams their bytes
 * (so multi-GB checkpoints never sit in memory). The file is written to a temporary name and moved into place,
 * so a reader never sees half a file.
 */
public final class SafetensorsWriter {
    /** Streams exactly the tensor's little-endian bytes. */
    @FunctionalInterface
    public interface ByteSource {
        void writeTo(WritableByteChannel out) throws IOException;
    }

    private record Entry(String name, DType dtype, long[] shape, ByteSource source) {
    }

    private final List<Entry> entries = new ArrayList<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    public SafetensorsWriter add(String name, DType dtype, long[] shape, ByteSource source) {
        if (entries.stream().anyMatch(e -> e.name.equals(name))) {
            throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
        }
        entries.add(new Entry(name, dtype, shape.clone(), source));
        return this;
    }

    public SafetensorsWriter addF32(String name, long[] shape, float[] values) {
        check(name, shape, values.length);
        return add(name, DType.F32, shape, out -> {
            ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(values);
            writeAll(out, b);
        });
    }

    public SafetensorsWriter addI64(String name, long[] shape, long[] values) {
        check(name, shape, values.length);
        return add(name, DType.I64, shape, out -> {
            ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
            b.asLongBuffer().put(values);
            writeAll(out, b);
        });
    }

    private static void check(String name, long[] shape, int length) {
        if (Tensor.numel(shape) != length) {
            throw new IllegalArgumentException("tensor '" + name + "': " + length + " values for shape " + java.util.Arrays.toString(shape));
        }
    }

    public static void writeAll(WritableByteChannel out, ByteBuffer b) throws IOException {
        b.rewind();
        while (b.hasRemaining()) {
            out.write(b);
        }
    }

    public void write(Path path) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Entry e : entries) {
            long size = Tensor.numel(e.shape) * e.dtype.byteSize();
            ObjectNode t = header.putObject(e.name);
            t.put("dtype", e.dtype.safetensorsName());
            ArrayNode s = t.putArray("shape");
            for (long d : e.shape) {
                s.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + size);
            offset += size;
        }
        byte[] headerBytes = json.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (headerBytes.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(headerBytes);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        Path parent = path.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = Files.createTempFile(parent, path.getFileName().toString(), ".partial");
        try {
            // read as well as write: a source may map its region of the file (FileChannel.map needs both)
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writeAll(ch, head);
                long expected = head.capacity();
                for (Entry e : entries) {
                    e.source.writeTo(ch);
                    expected += Tensor.numel(e.shape) * e.dtype.byteSize();
                    if (ch.position() != expected) {
                        throw new IOException("tensor '" + e.name + "': source wrote " + (ch.position() - expected
                                + Tensor.numel(e.shape) * e.dtype.byteSize()) + " bytes, expected " + Tensor.numel(e.shape) * e.dtype.byteSize());
                    }
                }
            }
            Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
