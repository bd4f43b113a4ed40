package dev.kimiserve.scheduler;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.Optional;

/** Configuration of the scheduler ({@code kimi.*}). */
@ConfigMapping(prefix = "kimi")
public interface SchedulerConfig {
    Kafka kafka();

    Model model();

    Scheduler scheduler();

    interface Kafka {
        /** Kafka bootstrap servers. */
        @WithDefault("localhost:9092")
        String bootstrap();
    }

    interface Model {
        /** Model directory (config.json, tokenizer, chat template) used to validate Kafka-native requests. */
        String dir();

        /** Model id clients send; defaults to the directory name. */
        Optional<String> name();

        /** Longest context served (prompt + completion); 0 = the model's model_max_length. */
        @WithDefault("0")
        int maxModelLen();
    }

    interface Scheduler {
        /** Requests waiting for admission at most; more are refused with 429. */
        @WithDefault("256")
        int maxWaiting();

        /** Sequences between prefill and the end of decode at most. */
        @WithDefault("64")
        int maxRunning();

        /** Token budget: prompt plus max_tokens of the admitted requests (all choices) at most; 0 = none. */
        @WithDefault("1048576")
        long maxRunningTokens();

        /** A worker silent for this long is dead and its sequences are re-dispatched. */
        @WithDefault("3000")
        long workerTimeoutMs();

        /** Requests waiting for a pool (prefill or decode) with no live worker fail with 503 after this long. */
        @WithDefault("10000")
        long noWorkerGraceMs();

        /** A request not finished after this long fails with 504 (0 = never). */
        @WithDefault("600000")
        long requestTimeoutMs();
    }
}
