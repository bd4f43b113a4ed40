package dev.kimiserve.scheduler;

import dev.kimiserve.runtime.openai.ModelContext;
import dev.kimiserve.runtime.scheduler.SchedulerCore;
import dev.kimiserve.runtime.scheduler.SchedulerRuntime;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.nio.file.Path;
import org.jboss.logging.Logger;

/** Owns the {@link SchedulerRuntime}: starts it with the service, exposes its gauges under vLLM's metric names. */
@ApplicationScoped
public class SchedulerService {
    private static final Logger LOG = Logger.getLogger(SchedulerService.class);

    @Inject
    SchedulerConfig config;

    @Inject
    MeterRegistry metrics;

    private volatile SchedulerRuntime runtime;
    private volatile String startFailure;

    void start(@Observes StartupEvent ev) {
        Thread.ofPlatform().daemon().name("scheduler-start").start(() -> {
            try {
                Path dir = Path.of(config.model().dir());
                String name = config.model().name().orElse(dir.getFileName().toString());
                ModelContext model = ModelContext.load(dir, name, config.model().maxModelLen());
                SchedulerConfig.Scheduler s = config.scheduler();
                SchedulerRuntime r = new SchedulerRuntime(config.kafka().bootstrap(), model,
                        new SchedulerCore.Limits(s.maxWaiting(), s.maxRunning(), s.maxRunningTokens(), s.workerTimeoutMs(),
                                s.requestTimeoutMs(), s.noWorkerGraceMs()));
                r.start();
                runtime = r;
                registerGauges(r);
                LOG.infof("scheduler serving model %s (max %d waiting, %d running) via Kafka %s", name, s.maxWaiting(), s.maxRunning(),
                        config.kafka().bootstrap());
            } catch (RuntimeException e) {
                startFailure = e.getMessage();
                LOG.error("scheduler failed to start", e);
            }
        });
    }

    private void registerGauges(SchedulerRuntime r) {
        io.micrometer.core.instrument.Timer queueTime = io.micrometer.core.instrument.Timer.builder("vllm:request_queue_time_seconds")
                .description("Time a request waited for admission").publishPercentileHistogram()
                .minimumExpectedValue(java.time.Duration.ofMillis(1)).maximumExpectedValue(java.time.Duration.ofMinutes(10)).register(metrics);
        r.onQueueTime(millis -> queueTime.record(millis, java.util.concurrent.TimeUnit.MILLISECONDS));
        Gauge.builder("vllm:num_requests_waiting", r, SchedulerRuntime::waitingRequests).description("Requests waiting for admission").register(metrics);
        Gauge.builder("vllm:num_requests_running", r, SchedulerRuntime::runningRequests).description("Requests admitted and not finished").register(metrics);
        Gauge.builder("vllm:kv_cache_usage_perc", r, SchedulerRuntime::slotUsage)
                .description("Fraction of worker sequence-state slots in use (KDA state + MLA cache per sequence)").register(metrics);
        Gauge.builder("kimi_sequences_running", r, SchedulerRuntime::runningSequences).description("Sequences admitted and not finished").register(metrics);
        Gauge.builder("kimi_workers_alive", r, SchedulerRuntime::workersAlive).description("Workers with a recent heartbeat").register(metrics);
        Gauge.builder("kimi_redispatches", r, SchedulerRuntime::redispatches).description("Sequences re-dispatched after a worker failure").register(metrics);
        Gauge.builder("kimi_requests_seen", r, SchedulerRuntime::requestsSeen).description("Requests read from kimi.requests").register(metrics);
        Gauge.builder("kimi_native_responses", r, SchedulerRuntime::nativeAnswered).description("Responses sent on kimi.responses").register(metrics);
    }

    void stop(@Observes ShutdownEvent ev) {
        if (runtime != null) {
            runtime.close();
        }
    }

    public SchedulerRuntime runtime() {
        return runtime;
    }

    public String startFailure() {
        return startFailure;
    }
}
