package dev.kimiserve.kvstore;

import dev.kimiserve.core.state.StateFormatException;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.buffer.Buffer;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;

/**
 * The blob API: {@code PUT /v1/blobs/{key}} (verified, 400 for a corrupt blob, 413 over budget), {@code GET} (404 when
 * absent), {@code DELETE}, and {@code GET /v1/stats}.
 */
@ApplicationScoped
public class BlobRoutes {
    @Inject
    KvStoreConfig config;

    @Inject
    MeterRegistry metrics;

    private BlobStore store;

    void routes(@Observes Router router) {
        store = new BlobStore(config.budgetMb() << 20);
        Gauge.builder("kimi_kvstore_bytes", store, BlobStore::bytes).description("Bytes of state blobs held").register(metrics);
        Gauge.builder("kimi_kvstore_entries", store, BlobStore::entries).description("State blobs held").register(metrics);
        Gauge.builder("kimi_kvstore_evictions", store, BlobStore::evictions).description("Blobs evicted over budget").register(metrics);
        Gauge.builder("kimi_kvstore_rejected", store, BlobStore::rejected).description("Blobs refused (corrupt or too large)").register(metrics);
        router.put("/v1/blobs/:key").handler(BodyHandler.create().setBodyLimit(-1)).blockingHandler(this::put, false);
        router.get("/v1/blobs/:key").handler(this::get);
        router.delete("/v1/blobs/:key").handler(this::delete);
        router.get("/v1/stats").handler(ctx -> ctx.json(new io.vertx.core.json.JsonObject()
                .put("entries", store.entries()).put("bytes", store.bytes()).put("budget_bytes", store.budgetBytes())
                .put("evictions", store.evictions()).put("rejected", store.rejected())));
    }

    private static String key(RoutingContext ctx) {
        return URLDecoder.decode(ctx.pathParam("key"), StandardCharsets.UTF_8);
    }

    private void put(RoutingContext ctx) {
        byte[] blob = ctx.body().buffer() == null ? new byte[0] : ctx.body().buffer().getBytes();
        try {
            store.put(key(ctx), blob);
            ctx.response().setStatusCode(204).end();
        } catch (StateFormatException e) {
            error(ctx, 400, e.getMessage());
        } catch (BlobStore.TooLargeException e) {
            error(ctx, 413, e.getMessage());
        }
    }

    private void get(RoutingContext ctx) {
        store.get(key(ctx)).ifPresentOrElse(
                b -> ctx.response().putHeader("Content-Type", "application/octet-stream").end(Buffer.buffer(b)),
                () -> error(ctx, 404, "no blob under " + key(ctx)));
    }

    private void delete(RoutingContext ctx) {
        store.delete(key(ctx));
        ctx.response().setStatusCode(204).end();
    }

    private static void error(RoutingContext ctx, int status, String message) {
        ctx.response().setStatusCode(status).putHeader("Content-Type", "application/json")
                .end(new io.vertx.core.json.JsonObject().put("error", message).encode());
    }
}
