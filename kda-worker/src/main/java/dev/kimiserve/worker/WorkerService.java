package dev.kimiserve.worker;

import dev.kimiserve.runtime.worker.WorkerConfig;
import dev.kimiserve.runtime.worker.WorkerRuntime;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.nio.file.Path;
import java.util.UUID;
import org.jboss.logging.Logger;

/**
 * A worker in the combined placement (every layer in this process) of the prefill pool, the decode pool or both.
 * Until layer-type disaggregation lands, kda-worker hosts this placement.
 */
@ApplicationScoped
public class WorkerService {
    private static final Logger LOG = Logger.getLogger(WorkerService.class);

    @Inject
    WorkerServiceConfig config;

    @Inject
    MeterRegistry metrics;

    private volatile WorkerRuntime runtime;
    private volatile String startFailure;

    void start(@Observes StartupEvent ev) {
        WorkerServiceConfig.Worker w = config.worker();
        String id = w.id().orElse(w.role() + "-" + UUID.randomUUID().toString().substring(0, 8));
        int threads = w.threads() > 0 ? w.threads() : Runtime.getRuntime().availableProcessors();
        WorkerRuntime r = new WorkerRuntime(new WorkerConfig(id, w.role(), Path.of(config.model().dir()), config.kafka().bootstrap(),
                config.kvStore().url(), threads, w.maxRunning(), w.prefillChunk(), w.heartbeatMs()));
        runtime = r;
        Gauge.builder("kimi_worker_running_sequences", r, WorkerRuntime::runningSequences).description("Sequences on this worker").register(metrics);
        Gauge.builder("kimi_worker_decode_steps", r, WorkerRuntime::decodeSteps).description("Batched decode steps run").register(metrics);
        Gauge.builder("kimi_worker_tokens_generated", r, WorkerRuntime::tokensGenerated).description("Tokens sampled").register(metrics);
        Thread.ofPlatform().daemon().name("worker-start").start(() -> {
            try {
                r.start();
                LOG.infof("worker %s (%s) ready to serve %s", id, w.role(), config.model().dir());
            } catch (RuntimeException e) {
                startFailure = e.getMessage();
                LOG.error("worker failed to start", e);
            }
        });
    }

    void stop(@Observes ShutdownEvent ev) {
        if (runtime != null) {
            runtime.close();
        }
    }

    public WorkerRuntime runtime() {
        return runtime;
    }

    public String startFailure() {
        return startFailure;
    }
}
