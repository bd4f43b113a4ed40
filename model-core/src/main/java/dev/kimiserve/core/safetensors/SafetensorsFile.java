package dev.kimiserve.core.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.ModelFormatException;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file. The header is validated completely before any tensor is handed out: every
 * dtype known, every shape matching its byte range, every range inside the file and no two ranges overlapping.
 * The mapping is a {@link MemorySegment} (no 2 GiB limit); {@link #close()} unmaps it, after which tensor reads
 * fail with an exception instead of touching freed memory.
 *
 * <p>Format: 8 bytes little-endian header length N, N bytes of JSON
 * {@code {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}},
 * then the data section that the offsets index.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers above this size are refused (real ones are a few MB even for 20k tensors). */
    static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafetensorsFile open(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            if (fileSize < 8) {
                throw ModelFormatException.of(path, "file is " + fileSize + " bytes, too short for a safetensors header (truncated?)");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.flip().getLong();
            if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || headerLen > fileSize - 8) {
                throw ModelFormatException.of(path, "header length " + Long.toUnsignedString(headerLen)
                        + " does not fit the file of " + fileSize + " bytes (truncated or not a safetensors file)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLen);
            readFully(ch, header, 8);
            long dataStart = 8 + headerLen;
            long dataSize = fileSize - dataStart;
            HeaderContents parsed = parseHeader(path, header.array(), dataSize);
            Arena arena = Arena.ofShared();
            try {
                MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
                return new SafetensorsFile(path, arena, all.asSlice(dataStart, dataSize), parsed.tensors, parsed.metadata);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        } catch (IOException e) {
            throw ModelFormatException.of(path, "cannot read: " + e.getMessage(), e);
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    private record HeaderContents(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    }

    private static HeaderContents parseHeader(Path path, byte[] headerBytes, long dataSize) {
        JsonNode root;
        try {
            root = JSON.readTree(headerBytes);
        } catch (IOException e) {
            throw ModelFormatException.of(path, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw ModelFormatException.of(path, "header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode node = e.getValue();
            if (name.equals("__metadata__")) {
                if (!node.isObject()) {
                    throw ModelFormatException.of(path, "__metadata__ is not an object");
                }
                node.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            tensors.put(name, parseEntry(path, name, node, dataSize));
        }
        checkNoOverlap(path, tensors.values());
        return new HeaderContents(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode node, long dataSize) {
        String where = "tensor '" + name + "'";
        if (!node.isObject()) {
            throw ModelFormatException.of(path, where + ": header entry is not an object");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw ModelFormatException.of(path, where + ": missing or non-text 'dtype'");
        }
        DType dtype = DType.fromSafetensorsName(dtypeNode.asText()).orElseThrow(() ->
                ModelFormatException.of(path, where + ": unknown dtype '" + dtypeNode.asText() + "'"));
        JsonNode shapeNode = node.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw ModelFormatException.of(path, where + ": missing or non-array 'shape'");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) {
                throw ModelFormatException.of(path, where + ": shape entry " + i + " is not a non-negative integer: " + d);
            }
            shape[i] = d.asLong();
        }
        JsonNode offsets = node.get("data_offsets");
        if (offsets == null || !offsets.isArray() || offsets.size() != 2
                || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()
                || !offsets.get(0).canConvertToLong() || !offsets.get(1).canConvertToLong()) {
            throw ModelFormatException.of(path, where + ": 'data_offsets' must be [begin, end] integers, got " + offsets);
        }
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        if (begin < 0 || end < begin) {
            throw ModelFormatException.of(path, where + ": data_offsets [" + begin + ", " + end + "] are not an increasing range");
        }
        if (end > dataSize) {
            throw ModelFormatException.of(path, where + ": data_offsets [" + begin + ", " + end + "] point past the end of the data ("
                    + dataSize + " bytes): the file is truncated or the header is wrong");
        }
        long expected;
        try {
            expected = Math.multiplyExact(Tensor.numel(shape), dtype.byteSize());
        } catch (ArithmeticException ex) {
            throw ModelFormatException.of(path, where + ": shape overflows a 64-bit byte count");
        }
        if (expected != end - begin) {
            throw ModelFormatException.of(path, where + ": shape " + java.util.Arrays.toString(shape) + " of " + dtype
                    + " needs " + expected + " bytes but data_offsets give " + (end - begin));
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    private static void checkNoOverlap(Path path, Iterable<TensorInfo> infos) {
        List<TensorInfo> sorted = new ArrayList<>();
        infos.forEach(sorted::add);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            if (t.byteSize() == 0) {
                continue;
            }
            if (prev != null && t.begin() < prev.end()) {
                throw ModelFormatException.of(path, "tensors '" + prev.name() + "' and '" + t.name() + "' overlap (["
                        + prev.begin() + ", " + prev.end() + ") and [" + t.begin() + ", " + t.end() + "))");
            }
            prev = t;
        }
    }

    public Path path() {
        return path;
    }

    /** Tensor entries in header order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public Tensor tensor(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw ModelFormatException.of(path, "no tensor named '" + name + "'");
        }
        return new Tensor(name, info.dtype(), info.shape(), data.asSlice(info.begin(), info.byteSize()));
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
