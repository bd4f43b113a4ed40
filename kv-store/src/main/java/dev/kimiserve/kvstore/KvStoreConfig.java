package dev.kimiserve.kvstore;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** Configuration of the kv-store ({@code kimi.kv-store.*}). */
@ConfigMapping(prefix = "kimi.kv-store")
public interface KvStoreConfig {
    /** Memory budget for state blobs, in MiB; least recently used blobs are evicted beyond it. */
    @WithDefault("2048")
    long budgetMb();
}
