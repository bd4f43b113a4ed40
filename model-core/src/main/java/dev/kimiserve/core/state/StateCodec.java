package dev.kimiserve.core.state;

import dev.kimiserve.core.config.KimiLinearConfig;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * The versioned binary layout of a {@link SequenceState}; the kv-store stores exactly these bytes.
 * All numbers little-endian.
 *
 * <pre>
 * header   magic "KIMISEQ\0" (8) | u32 layout version (=1) | u32 layer count N | u64 position | u64 shape fingerprint
 * N layers u8 kind (1 = KDA, 2 = MLA) + 3 zero bytes, then
 *          KDA: u32 heads, u32 keyDim, u32 valueDim, u32 convWidth,
 *               f32 convQ[heads*keyDim*convWidth], convK[..], convV[..]  ([channel][tap], oldest tap first),
 *               f32 S[heads*keyDim*valueDim]                               ([head][key][value])
 *          MLA: u32 latentSize, u32 tokens, f32 latents[tokens*latentSize] ([token][c | k_pe])
 * trailer  u32 CRC-32C of every byte before it
 * </pre>
 * The fingerprint hashes the state-relevant shapes of the config, so a state never loads into another model.
 */
public final class StateCodec {
    public static final int VERSION = 1;
    private static final byte[] MAGIC = "KIMISEQ\0".getBytes(StandardCharsets.US_ASCII);
    private static final int KIND_KDA = 1;
    private static final int KIND_MLA = 2;

    private StateCodec() {
    }

    /** A 64-bit FNV-1a hash of the shapes a state depends on. */
    public static long fingerprint(KimiLinearConfig cfg) {
        StringBuilder sb = new StringBuilder("kimi-state:").append(cfg.hiddenSize()).append(':').append(cfg.layerKinds());
        if (cfg.kda() != null) {
            sb.append(":kda=").append(cfg.kda());
        }
        if (cfg.mla() != null) {
            sb.append(":mla=").append(cfg.mla().latentSize()).append('/').append(cfg.mla().kvLoraRank());
        }
        long h = 0xcbf29ce484222325L;
        for (byte b : sb.toString().getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }

    public static long encodedSize(SequenceState s) {
        long n = 32 + 4;
        for (int i = 0; i < s.numLayers(); i++) {
            n += 4;
            if (s.layer(i) instanceof KdaState k) {
                n += 16 + 4L * (3L * k.convQ.length + k.recurrent.length);
            } else {
                MlaCache m = (MlaCache) s.layer(i);
                n += 8 + 4L * m.length() * m.latentSize();
            }
        }
        return n;
    }

    public static byte[] encode(SequenceState s, KimiLinearConfig cfg) {
        long size = encodedSize(s);
        if (size > Integer.MAX_VALUE - 16) {
            throw new IllegalStateException("state of " + size + " bytes is too large for one blob");
        }
        ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(VERSION).putInt(s.numLayers()).putLong(s.position()).putLong(fingerprint(cfg));
        for (int i = 0; i < s.numLayers(); i++) {
            if (s.layer(i) instanceof KdaState k) {
                b.put((byte) KIND_KDA).put((byte) 0).put((byte) 0).put((byte) 0);
                b.putInt(k.heads()).putInt(k.keyDim()).putInt(k.valueDim()).putInt(k.convWidth());
                putFloats(b, k.convQ);
                putFloats(b, k.convK);
                putFloats(b, k.convV);
                putFloats(b, k.recurrent);
            } else {
                MlaCache m = (MlaCache) s.layer(i);
                b.put((byte) KIND_MLA).put((byte) 0).put((byte) 0).put((byte) 0);
                b.putInt(m.latentSize()).putInt(m.length());
                for (int t = 0; t < m.length(); t++) {
                    float[] page = m.page(t);
                    int off = m.offsetInPage(t);
                    for (int j = 0; j < m.latentSize(); j++) {
                        b.putFloat(page[off + j]);
                    }
                }
            }
        }
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, b.position());
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /**
     * Checks a blob's envelope without knowing the model: length, magic, layout version and CRC-32C (what a store can
     * verify). Returns the blob's layout version; throws {@link StateFormatException} on any mismatch.
     */
    public static int verifyEnvelope(byte[] bytes) {
        if (bytes.length < 36) {
            throw new StateFormatException("state blob of " + bytes.length + " bytes is shorter than its header");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (b.getInt(bytes.length - 4) != (int) crc.getValue()) {
            throw new StateFormatException("state blob checksum mismatch: corrupted");
        }
        byte[] magic = new byte[8];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new StateFormatException("not a sequence-state blob (bad magic)");
        }
        int version = b.getInt();
        if (version != VERSION) {
            throw new StateFormatException("state layout version " + version + " is not supported (this build reads " + VERSION + ")");
        }
        return version;
    }

    /** Decodes and verifies a blob; any mismatch (checksum, version, shapes, model) is a {@link StateFormatException}. */
    public static SequenceState decode(byte[] bytes, KimiLinearConfig cfg) {
        if (bytes.length < 36) {
            throw new StateFormatException("state blob of " + bytes.length + " bytes is shorter than its header");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int stored = b.getInt(bytes.length - 4);
        if (stored != (int) crc.getValue()) {
            throw new StateFormatException("state blob checksum mismatch (stored " + Integer.toHexString(stored)
                    + ", computed " + Long.toHexString(crc.getValue()) + "): corrupted");
        }
        byte[] magic = new byte[8];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new StateFormatException("not a sequence-state blob (bad magic)");
        }
        int version = b.getInt();
        if (version != VERSION) {
            throw new StateFormatException("state layout version " + version + " is not supported (this build reads " + VERSION + ")");
        }
        int n = b.getInt();
        long position = b.getLong();
        long fp = b.getLong();
        if (fp != fingerprint(cfg) || n != cfg.numLayers()) {
            throw new StateFormatException("state was made by a model with other shapes (fingerprint " + Long.toHexString(fp)
                    + ", expected " + Long.toHexString(fingerprint(cfg)) + ")");
        }
        SequenceState fresh = SequenceState.create(cfg);
        LayerState[] layers = new LayerState[n];
        try {
            for (int i = 0; i < n; i++) {
                int kind = b.get();
                b.position(b.position() + 3);
                LayerState expected = fresh.layer(i);
                if (kind == KIND_KDA && expected instanceof KdaState k) {
                    int h = b.getInt(), kd = b.getInt(), vd = b.getInt(), w = b.getInt();
                    if (h != k.heads() || kd != k.keyDim() || vd != k.valueDim() || w != k.convWidth()) {
                        throw new StateFormatException("layer " + i + ": KDA state shape " + h + "x" + kd + "x" + vd + " conv " + w + " does not match the model");
                    }
                    getFloats(b, k.convQ);
                    getFloats(b, k.convK);
                    getFloats(b, k.convV);
                    getFloats(b, k.recurrent);
                    layers[i] = k;
                } else if (kind == KIND_MLA && expected instanceof MlaCache m) {
                    int latent = b.getInt();
                    int tokens = b.getInt();
                    if (latent != m.latentSize() || tokens < 0) {
                        throw new StateFormatException("layer " + i + ": latent size " + latent + " does not match the model's " + m.latentSize());
                    }
                    float[] row = new float[latent];
                    for (int t = 0; t < tokens; t++) {
                        getFloats(b, row);
                        m.append(row, 0);
                    }
                    layers[i] = m;
                } else {
                    throw new StateFormatException("layer " + i + ": kind " + kind + " does not match the model's layer type");
                }
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new StateFormatException("state blob is truncated");
        }
        if (b.position() != bytes.length - 4) {
            throw new StateFormatException("state blob has " + (bytes.length - 4 - b.position()) + " trailing bytes");
        }
        return SequenceState.of(layers, position);
    }

    private static void putFloats(ByteBuffer b, float[] v) {
        b.asFloatBuffer().put(v);
        b.position(b.position() + 4 * v.length);
    }

    private static void getFloats(ByteBuffer b, float[] v) {
        b.asFloatBuffer().get(v);
        b.position(b.position() + 4 * v.length);
    }
}
