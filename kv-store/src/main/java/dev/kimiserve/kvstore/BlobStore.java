package dev.kimiserve.kvstore;

import dev.kimiserve.core.state.StateCodec;
import dev.kimiserve.core.state.StateFormatException;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Sequence-state blobs in memory under a byte budget, least recently used evicted first. Every blob is verified on the
 * way in (magic, layout version, CRC-32C): a corrupt or foreign blob is refused, never stored.
 */
public final class BlobStore {
    private final long budgetBytes;
    private final LinkedHashMap<String, byte[]> blobs = new LinkedHashMap<>(64, 0.75f, true);
    private long bytes;
    private long evictions;
    private long rejected;

    public BlobStore(long budgetBytes) {
        this.budgetBytes = budgetBytes;
    }

    /** Stores a verified blob; throws {@link StateFormatException} for a bad one, {@link TooLargeException} over budget. */
    public synchronized void put(String key, byte[] blob) {
        try {
            StateCodec.verifyEnvelope(blob);
        } catch (StateFormatException e) {
            rejected++;
            throw e;
        }
        if (blob.length > budgetBytes) {
            rejected++;
            throw new TooLargeException("a blob of " + blob.length + " bytes exceeds the store's budget of " + budgetBytes + " bytes");
        }
        byte[] old = blobs.put(key, blob);
        bytes += blob.length - (old == null ? 0 : old.length);
        for (Iterator<Map.Entry<String, byte[]>> it = blobs.entrySet().iterator(); bytes > budgetBytes && it.hasNext(); ) {
            Map.Entry<String, byte[]> eldest = it.next();
            if (eldest.getKey().equals(key)) {
                continue;
            }
            bytes -= eldest.getValue().length;
            it.remove();
            evictions++;
        }
    }

    public synchronized Optional<byte[]> get(String key) {
        return Optional.ofNullable(blobs.get(key));
    }

    public synchronized boolean delete(String key) {
        byte[] old = blobs.remove(key);
        if (old != null) {
            bytes -= old.length;
        }
        return old != null;
    }

    public synchronized long bytes() {
        return bytes;
    }

    public synchronized int entries() {
        return blobs.size();
    }

    public synchronized long evictions() {
        return evictions;
    }

    public synchronized long rejected() {
        return rejected;
    }

    public long budgetBytes() {
        return budgetBytes;
    }

    /** A blob bigger than the whole budget. */
    public static final class TooLargeException extends RuntimeException {
        public TooLargeException(String message) {
            super(message);
        }
    }
}
