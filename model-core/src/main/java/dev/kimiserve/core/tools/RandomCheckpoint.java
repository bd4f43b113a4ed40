package dev.kimiserve.core.tools;

import dev.kimiserve.core.config.ConfigWriter;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.safetensors.Checkpoint;
import dev.kimiserve.core.safetensors.SafetensorsWriter;
import dev.kimiserve.core.tensor.DType;
import dev.kimiserve.core.tensor.Tensor;
import dev.kimiserve.core.weights.WeightNames;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.LongStream;

/**
 * Writes a random-weight checkpoint in the released Hugging Face layout: config.json and bf16 safetensors (sharded
 * like the real checkpoint when larger than {@code maxShardBytes}), with the released tensor names. Each tensor's values
 * depend only on the seed and its name, so any subset of layers is reproducible.
 */
public final class RandomCheckpoint {
    /** How a tensor is filled. */
    enum Init { LINEAR, NORM, CONV, A_LOG, DT_BIAS, BIAS, EMBED }

    record Spec(String name, DType dtype, long[] shape, Init init) {
        long bytes() {
            return Tensor.numel(shape) * dtype.byteSize();
        }
    }

    private RandomCheckpoint() {
    }

    /** Every tensor of the model, in checkpoint order. */
    static List<Spec> specs(KimiLinearConfig c) {
        List<Spec> s = new ArrayList<>();
        long d = c.hiddenSize();
        s.add(new Spec("model.embed_tokens.weight", DType.BF16, new long[]{c.vocabSize(), d}, Init.EMBED));
        for (int i = 0; i < c.numLayers(); i++) {
            String p = WeightNames.layerPrefix(i);
            s.add(new Spec(p + "input_layernorm.weight", DType.BF16, new long[]{d}, Init.NORM));
            s.add(new Spec(p + "post_attention_layernorm.weight", DType.BF16, new long[]{d}, Init.NORM));
            if (c.layerKind(i) == LayerKind.KDA) {
                long ch = c.kda().projectionSize();
                long r = c.kda().headDim();
                long h = c.kda().numHeads();
                for (String n : new String[]{"q", "k", "v"}) {
                    s.add(new Spec(p + "self_attn." + n + "_proj.weight", DType.BF16, new long[]{ch, d}, Init.LINEAR));
                }
                for (String n : new String[]{"q", "k", "v"}) {
                    s.add(new Spec(p + "self_attn." + n + "_conv1d.weight", DType.BF16, new long[]{ch, 1, c.kda().convKernel()}, Init.CONV));
                }
                s.add(new Spec(p + "self_attn.f_a_proj.weight", DType.BF16, new long[]{r, d}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.f_b_proj.weight", DType.BF16, new long[]{ch, r}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.A_log", DType.F32, new long[]{1, 1, h, 1}, Init.A_LOG));
                s.add(new Spec(p + "self_attn.dt_bias", DType.F32, new long[]{ch}, Init.DT_BIAS));
                s.add(new Spec(p + "self_attn.b_proj.weight", DType.BF16, new long[]{h, d}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.g_a_proj.weight", DType.BF16, new long[]{r, d}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.g_b_proj.weight", DType.BF16, new long[]{ch, r}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.o_norm.weight", DType.BF16, new long[]{r}, Init.NORM));
                s.add(new Spec(p + "self_attn.o_proj.weight", DType.BF16, new long[]{d, ch}, Init.LINEAR));
            } else {
                var m = c.mla();
                long heads = m.numHeads();
                if (m.qLoraRank() == 0) {
                    s.add(new Spec(p + "self_attn.q_proj.weight", DType.BF16, new long[]{heads * m.qkHeadDim(), d}, Init.LINEAR));
                } else {
                    s.add(new Spec(p + "self_attn.q_a_proj.weight", DType.BF16, new long[]{m.qLoraRank(), d}, Init.LINEAR));
                    s.add(new Spec(p + "self_attn.q_a_layernorm.weight", DType.BF16, new long[]{m.qLoraRank()}, Init.NORM));
                    s.add(new Spec(p + "self_attn.q_b_proj.weight", DType.BF16, new long[]{heads * m.qkHeadDim(), m.qLoraRank()}, Init.LINEAR));
                }
                s.add(new Spec(p + "self_attn.kv_a_proj_with_mqa.weight", DType.BF16, new long[]{m.latentSize(), d}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.kv_a_layernorm.weight", DType.BF16, new long[]{m.kvLoraRank()}, Init.NORM));
                s.add(new Spec(p + "self_attn.kv_b_proj.weight", DType.BF16, new long[]{heads * (m.qkNopeHeadDim() + m.vHeadDim()), m.kvLoraRank()}, Init.LINEAR));
                s.add(new Spec(p + "self_attn.o_proj.weight", DType.BF16, new long[]{d, heads * m.vHeadDim()}, Init.LINEAR));
            }
            if (c.mlpKind(i) == MlpKind.DENSE) {
                addMlp(s, p + "mlp.", "gate_proj", "up_proj", "down_proj", c.intermediateSize(), d);
            } else {
                var m = c.moe();
                s.add(new Spec(p + "block_sparse_moe.gate.weight", DType.BF16, new long[]{m.numExperts(), d}, Init.LINEAR));
                s.add(new Spec(p + "block_sparse_moe.gate.e_score_correction_bias", DType.F32, new long[]{m.numExperts()}, Init.BIAS));
                for (int e = 0; e < m.numExperts(); e++) {
                    addMlp(s, p + "block_sparse_moe.experts." + e + ".", "w1", "w3", "w2", m.intermediateSize(), d);
                }
                if (m.numSharedExperts() > 0) {
                    addMlp(s, p + "block_sparse_moe.shared_experts.", "gate_proj", "up_proj", "down_proj", m.sharedIntermediateSize(), d);
                }
            }
        }
        s.add(new Spec("model.norm.weight", DType.BF16, new long[]{d}, Init.NORM));
        if (!c.tieWordEmbeddings()) {
            s.add(new Spec("lm_head.weight", DType.BF16, new long[]{c.vocabSize(), d}, Init.LINEAR));
        }
        return s;
    }

    private static void addMlp(List<Spec> s, String prefix, String gate, String up, String down, long width, long d) {
        s.add(new Spec(prefix + gate + ".weight", DType.BF16, new long[]{width, d}, Init.LINEAR));
        s.add(new Spec(prefix + up + ".weight", DType.BF16, new long[]{width, d}, Init.LINEAR));
        s.add(new Spec(prefix + down + ".weight", DType.BF16, new long[]{d, width}, Init.LINEAR));
    }

    /** Total weight bytes of a config's checkpoint. */
    public static long totalBytes(KimiLinearConfig c) {
        return specs(c).stream().mapToLong(Spec::bytes).sum();
    }

    /**
     * Writes config.json and the safetensors files into {@code dir} (created if missing).
     *
     * @param progress called with (bytes written, total bytes) after each tensor; may be null
     */
    public static void write(KimiLinearConfig c, Path dir, long seed, long maxShardBytes, Progress progress) throws IOException {
        Files.createDirectories(dir);
        List<Spec> specs = specs(c);
        long total = specs.stream().mapToLong(Spec::bytes).sum();
        List<List<Spec>> shards = new ArrayList<>();
        List<Spec> current = new ArrayList<>();
        long size = 0;
        for (Spec sp : specs) {
            if (!current.isEmpty() && size + sp.bytes() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                size = 0;
            }
            current.add(sp);
            size += sp.bytes();
        }
        shards.add(current);
        long[] written = {0};
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (int k = 0; k < shards.size(); k++) {
            String file = shards.size() == 1 ? Checkpoint.SINGLE_FILE
                    : String.format("model-%05d-of-%05d.safetensors", k + 1, shards.size());
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt").metadata("generator", "kimi make-model seed=" + seed);
            for (Spec sp : shards.get(k)) {
                weightMap.put(sp.name(), file);
                w.add(sp.name(), sp.dtype(), sp.shape(), out -> {
                    fill(sp, seed, out);
                    written[0] += sp.bytes();
                    if (progress != null) {
                        progress.update(written[0], total);
                    }
                });
            }
            w.write(dir.resolve(file));
        }
        if (shards.size() > 1) {
            StringBuilder idx = new StringBuilder("{\n  \"metadata\": {\"total_size\": " + total + "},\n  \"weight_map\": {\n");
            int n = 0;
            for (var e : weightMap.entrySet()) {
                idx.append("    \"").append(e.getKey()).append("\": \"").append(e.getValue()).append('"')
                        .append(++n < weightMap.size() ? ",\n" : "\n");
            }
            idx.append("  }\n}\n");
            Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), idx.toString(), StandardCharsets.UTF_8);
        }
        Files.writeString(dir.resolve("config.json"), ConfigWriter.toJson(c));
    }

    /** Progress of a long write. */
    @FunctionalInterface
    public interface Progress {
        void update(long bytesWritten, long totalBytes);
    }

    /** Values per independently seeded chunk: chunks are generated in parallel. */
    private static final int CHUNK = 1 << 20;

    /**
     * The tensor's values, chunk by chunk (each chunk seeded by the seed, the tensor's name and its index, so the
     * bytes do not depend on the threads). Into a file channel they go through a mapping of the tensor's region,
     * every thread writing its chunks in place (a file's write calls take its inode lock, so parallel writes would
     * queue; page faults on a mapping do not); into any other channel, in order.
     */
    static void fill(Spec sp, long seed, WritableByteChannel out) throws IOException {
        long n = Tensor.numel(sp.shape());
        long chunks = (n + CHUNK - 1) / CHUNK;
        int width = sp.dtype().byteSize();
        if (out instanceof FileChannel file) {
            long start = file.position();
            try (Arena arena = Arena.ofShared()) {
                MemorySegment region = file.map(FileChannel.MapMode.READ_WRITE, start, n * width, arena);
                LongStream.range(0, chunks).parallel().forEach(chunk -> fillChunk(sp, seed, n, chunk, region.asSlice(chunk * CHUNK * width)));
            }
            file.position(start + n * width);
            return;
        }
        int parallel = Math.max(1, Runtime.getRuntime().availableProcessors());
        int batch = (int) Math.min(chunks, 2L * parallel);
        for (long first = 0; first < chunks; first += batch) {
            long from = first;
            List<ByteBuffer> bufs = LongStream.range(from, Math.min(chunks, from + batch)).parallel().mapToObj(chunk -> {
                byte[] bytes = new byte[(int) (Math.min(CHUNK, n - chunk * CHUNK) * width)];
                fillChunk(sp, seed, n, chunk, MemorySegment.ofArray(bytes));
                return ByteBuffer.wrap(bytes);
            }).toList();
            for (ByteBuffer b : bufs) {
                while (b.hasRemaining()) {
                    out.write(b);
                }
            }
        }
    }

    private static final ValueLayout.OfShort BF16_BITS = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Chunk {@code chunk} of a tensor of {@code n} values, as little-endian bytes from the start of {@code dst}. */
    private static void fillChunk(Spec sp, long seed, long n, long chunk, MemorySegment dst) {
        long base = seed * 0x9E3779B97F4A7C15L ^ sp.name().hashCode();
        long cols = sp.shape()[sp.shape().length - 1];
        // uniform(-a, a) has std a / sqrt(3)
        double a = switch (sp.init()) {
            case LINEAR -> Math.sqrt(3.0 / cols);
            case EMBED -> Math.sqrt(3.0);
            case CONV -> 0.5 * Math.sqrt(3.0);
            case NORM -> 0.1;
            case BIAS -> 0.05;
            case DT_BIAS -> 1.0;
            case A_LOG -> 0;
        };
        int m = (int) Math.min(CHUNK, n - chunk * CHUNK);
        boolean f32 = sp.dtype() == DType.F32;
        boolean norm = sp.init() == Init.NORM;
        boolean aLog = sp.init() == Init.A_LOG;
        SplittableRandom rnd = new SplittableRandom(base + 0x632BE59BD9B4E019L * chunk);
        for (int i = 0; i < m; i++) {                       // NORM: 1 + uniform(-a, a); A_LOG: log(1 + 15 u); else uniform(-a, a)
            double u = rnd.nextDouble();
            double v = aLog ? Math.log(1 + 15 * u) : norm ? 1.0 + a * (2 * u - 1) : a * (2 * u - 1);
            if (f32) {
                dst.set(F32, 4L * i, (float) v);
            } else {
                dst.set(BF16_BITS, 2L * i, toBf16((float) v));
            }
        }
    }

    /** Round-to-nearest-even fp32 -> bf16. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) 0x7fc0;
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
