package dev.kimiserve.scheduler;

import dev.kimiserve.runtime.scheduler.SchedulerRuntime;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;
import org.eclipse.microprofile.health.Readiness;
import org.eclipse.microprofile.health.Startup;

/** started: the model context is loaded; ready: Kafka partitions assigned and no consumer failed; live: in-process ping. */
@ApplicationScoped
public class SchedulerHealth {
    @Inject
    SchedulerService service;

    @Startup
    HealthCheck started() {
        return () -> HealthCheckResponse.named("scheduler-started").status(service.runtime() != null)
                .withData("failure", String.valueOf(service.startFailure())).build();
    }

    @Readiness
    HealthCheck ready() {
        return () -> {
            SchedulerRuntime r = service.runtime();
            boolean up = r != null && r.ready();
            return HealthCheckResponse.named("scheduler-ready").status(up)
                    .withData("workers_alive", r == null ? 0 : r.workersAlive())
                    .withData("waiting", r == null ? 0 : r.waitingRequests())
                    .withData("failure", String.valueOf(r == null ? service.startFailure() : r.failure())).build();
        };
    }

    @Liveness
    HealthCheck live() {
        return () -> HealthCheckResponse.up("scheduler-live");
    }
}
