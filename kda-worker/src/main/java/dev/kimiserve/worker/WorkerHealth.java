package dev.kimiserve.worker;

import dev.kimiserve.runtime.worker.WorkerRuntime;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;
import org.eclipse.microprofile.health.Readiness;
import org.eclipse.microprofile.health.Startup;

/**
 * started: weights mapped and kernels warmed up; ready: task and control partitions assigned, kv-store reachable, no
 * consumer failed; live: in-process ping.
 */
@ApplicationScoped
public class WorkerHealth {
    @Inject
    WorkerService service;

    @Startup
    HealthCheck started() {
        return () -> {
            WorkerRuntime r = service.runtime();
            return HealthCheckResponse.named("worker-started").status(r != null && r.started())
                    .withData("failure", String.valueOf(service.startFailure())).build();
        };
    }

    @Readiness
    HealthCheck ready() {
        return () -> {
            WorkerRuntime r = service.runtime();
            boolean kv = r != null && r.started() && r.kvStoreReachable();
            boolean up = r != null && r.ready() && kv;
            return HealthCheckResponse.named("worker-ready").status(up)
                    .withData("role", r == null ? "?" : r.config().role())
                    .withData("worker_id", r == null ? "?" : r.config().workerId())
                    .withData("kv_store_reachable", kv)
                    .withData("running", r == null ? 0 : r.runningSequences())
                    .withData("failure", String.valueOf(r == null || r.failure() == null ? service.startFailure() : r.failure())).build();
        };
    }

    @Liveness
    HealthCheck live() {
        return () -> HealthCheckResponse.up("worker-live");
    }
}
