package dev.kimiserve.worker;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.Optional;

/** Configuration of a worker ({@code kimi.*}). */
@ConfigMapping(prefix = "kimi")
public interface WorkerServiceConfig {
    Kafka kafka();

    Model model();

    Worker worker();

    KvStore kvStore();

    interface Kafka {
        /** Kafka bootstrap servers. */
        @WithDefault("localhost:9092")
        String bootstrap();
    }

    interface Model {
        /** Model directory in the Hugging Face layout. */
        String dir();

        /** Model id clients send (read by the gateway and scheduler; accepted here so one config serves all). */
        Optional<String> name();

        /** Longest context served (read by the gateway and scheduler; accepted here so one config serves all). */
        @WithDefault("0")
        int maxModelLen();
    }

    interface Worker {
        /** Unique id of this worker (its task topic is kimi.work.ID); random when unset. */
        Optional<String> id();

        /** prefill, decode or combined. */
        @WithDefault("combined")
        String role();

        /** Compute threads (0 = all cores). */
        @WithDefault("0")
        int threads();

        /** Decode sequences batched together at most. */
        @WithDefault("32")
        int maxRunning();

        /** Prompt tokens per prefill step. */
        @WithDefault("512")
        int prefillChunk();

        /** Heartbeat interval on kimi.control. */
        @WithDefault("500")
        long heartbeatMs();
    }

    interface KvStore {
        /** Base URL of the kv-store service. */
        @WithDefault("http://localhost:8084")
        String url();
    }
}
