package dev.kimiserve.gateway;

import dev.kimiserve.runtime.gateway.GatewayRuntime;
import dev.kimiserve.runtime.openai.ModelContext;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.nio.file.Path;
import org.jboss.logging.Logger;

/** Loads the model's tokenizer and chat template and owns the gateway's Kafka runtime. */
@ApplicationScoped
public class GatewayService {
    private static final Logger LOG = Logger.getLogger(GatewayService.class);

    @Inject
    GatewayConfig config;

    @Inject
    MeterRegistry metrics;

    private volatile ModelContext model;
    private volatile GatewayRuntime runtime;
    private volatile String startFailure;
    private final long startedAt = System.currentTimeMillis() / 1000;

    void start(@Observes StartupEvent ev) {
        try {
            Path dir = Path.of(config.model().dir());
            model = ModelContext.load(dir, config.model().name().orElse(dir.getFileName().toString()), config.model().maxModelLen());
            GatewayRuntime r = new GatewayRuntime(config.kafka().bootstrap(), config.gateway().tokensPartition(), config.gateway().livenessMs());
            r.start();
            runtime = r;
            Gauge.builder("kimi_gateway_requests_in_flight", r, GatewayRuntime::inFlight).description("Requests this gateway is answering").register(metrics);
            LOG.infof("gateway serving model %s (%s, max %d tokens of context)", model.name(),
                    model.tokenizer() == null ? "token-id prompts only" : "tokenizer " + model.tokenizer().source(), model.maxModelLen());
        } catch (RuntimeException e) {
            startFailure = e.getMessage();
            LOG.error("gateway failed to start", e);
        }
    }

    void stop(@Observes ShutdownEvent ev) {
        if (runtime != null) {
            runtime.close();
        }
    }

    public ModelContext model() {
        return model;
    }

    public GatewayRuntime runtime() {
        return runtime;
    }

    public long startedAt() {
        return startedAt;
    }

    /** Why the gateway cannot serve now, or null. */
    public String whyNotServing() {
        if (runtime == null) {
            return startFailure != null ? "the gateway failed to start: " + startFailure : "the gateway is starting";
        }
        return runtime.whyNotServing();
    }
}
