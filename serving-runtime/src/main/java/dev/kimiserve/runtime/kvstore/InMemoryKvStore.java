package dev.kimiserve.runtime.kvstore;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/** A kv-store in this JVM, for tests: records every key written and can be told to lose everything. */
public final class InMemoryKvStore implements KvStore {
    private final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
    private final List<String> history = new ArrayList<>();

    @Override
    public synchronized void put(String key, byte[] blob) {
        blobs.put(key, blob.clone());
        history.add("put " + key);
    }

    @Override
    public Optional<byte[]> get(String key) {
        byte[] b = blobs.get(key);
        return Optional.ofNullable(b == null ? null : b.clone());
    }

    @Override
    public synchronized void delete(String key) {
        blobs.remove(key);
        history.add("delete " + key);
    }

    @Override
    public boolean reachable() {
        return true;
    }

    public synchronized List<String> history() {
        return List.copyOf(history);
    }

    public int size() {
        return blobs.size();
    }
}
