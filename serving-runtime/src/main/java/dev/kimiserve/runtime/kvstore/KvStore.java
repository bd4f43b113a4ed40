package dev.kimiserve.runtime.kvstore;

import java.util.Optional;

/** Where sequence states live between prefill and decode: the kv-store service, or memory in tests. */
public interface KvStore {
    void put(String key, byte[] blob);

    Optional<byte[]> get(String key);

    void delete(String key);

    boolean reachable();
}
