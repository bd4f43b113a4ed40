package dev.kimiserve.gateway;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.List;
import java.util.Optional;

/** Configuration of the gateway ({@code kimi.*}). */
@ConfigMapping(prefix = "kimi")
public interface GatewayConfig {
    Kafka kafka();

    Model model();

    Gateway gateway();

    interface Kafka {
        /** Kafka bootstrap servers. */
        @WithDefault("localhost:9092")
        String bootstrap();
    }

    interface Model {
        /** Model directory (config.json, tokenizer, chat template). */
        String dir();

        /** Model id clients send; defaults to the directory name. */
        Optional<String> name();

        /** Longest context served (prompt + completion); 0 = the model's model_max_length. */
        @WithDefault("0")
        int maxModelLen();
    }

    interface Gateway {
        /** Partition of kimi.tokens this gateway reads (1..15); give each replica its own. */
        @WithDefault("1")
        int tokensPartition();

        /** API keys accepted as "Authorization: Bearer KEY"; none configured = no authentication. */
        Optional<List<String>> apiKeys();

        /** Largest request body accepted (413 above). */
        @WithDefault("4194304")
        long maxBodyBytes();

        /** A scheduler or worker without a heartbeat for this long counts as gone (503 when none is left). */
        @WithDefault("3000")
        long livenessMs();

        /** The gateway gives up on a request after this long without an answer (504). */
        @WithDefault("660000")
        long requestTimeoutMs();
    }
}
