package dev.kimiserve.gateway;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;
import org.eclipse.microprofile.health.Readiness;
import org.eclipse.microprofile.health.Startup;

/** started: model context loaded; ready: Kafka assigned, scheduler and prefill + decode workers alive; live: ping. */
@ApplicationScoped
public class GatewayHealth {
    @Inject
    GatewayService service;

    @Startup
    HealthCheck started() {
        return () -> HealthCheckResponse.named("gateway-started").status(service.runtime() != null).build();
    }

    @Readiness
    HealthCheck ready() {
        return () -> {
            String why = service.whyNotServing();
            return HealthCheckResponse.named("gateway-ready").status(why == null).withData("reason", String.valueOf(why)).build();
        };
    }

    @Liveness
    HealthCheck live() {
        return () -> HealthCheckResponse.up("gateway-live");
    }
}
