package dev.kimiserve.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.RequestEnvelope;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.runtime.openai.ApiException;
import dev.kimiserve.runtime.openai.RequestParser;
import dev.kimiserve.runtime.openai.ResponseAssembly;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * The OpenAI-compatible HTTP API: {@code POST /v1/chat/completions}, {@code POST /v1/completions} (streamed as SSE or
 * not), {@code GET /v1/models}, {@code GET /health}. Errors are OpenAI error objects with the matching status: 400 bad
 * input (naming the parameter), 401 bad API key, 404 unknown model, 413 body too large, 429 queue full (Retry-After),
 * 503 not ready, 504 timeout. A client that disconnects cancels its request on every service.
 */
@ApplicationScoped
public class OpenAiRoutes {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Inject
    GatewayService service;

    @Inject
    GatewayConfig config;

    @Inject
    GatewayMetrics metrics;

    @Inject
    Vertx vertx;

    void routes(@Observes Router router) {
        long limit = config.gateway().maxBodyBytes();
        router.post("/v1/*").order(-10).handler(ctx -> {
            String len = ctx.request().getHeader("Content-Length");
            if (len != null && parseLong(len) > limit) {
                error(ctx, new ErrorInfo(413, "The request body of " + len + " bytes exceeds the limit of " + limit + " bytes.",
                        "invalid_request_error", null, "request_too_large"));
                return;
            }
            ctx.next();
        });
        router.post("/v1/*").order(-9).handler(BodyHandler.create().setBodyLimit(limit).setHandleFileUploads(false));
        router.post("/v1/chat/completions").handler(ctx -> generate(ctx, RequestEnvelope.CHAT));
        router.post("/v1/completions").handler(ctx -> generate(ctx, RequestEnvelope.COMPLETIONS));
        router.get("/v1/models").handler(this::models);
        router.get("/health").handler(this::health);
        router.route("/v1/*").last().handler(ctx -> error(ctx, new ErrorInfo(404, "Unknown endpoint " + ctx.request().method() + " "
                + ctx.request().path(), "invalid_request_error", null, "unknown_url")));
    }

    private static long parseLong(String s) {
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private boolean authorized(RoutingContext ctx) {
        List<String> keys = config.gateway().apiKeys().orElse(List.of());
        if (keys.isEmpty()) {
            return true;
        }
        String auth = ctx.request().getHeader("Authorization");
        String key = auth != null && auth.startsWith("Bearer ") ? auth.substring(7).trim() : null;
        if (key != null && keys.contains(key)) {
            return true;
        }
        error(ctx, new ErrorInfo(401, key == null ? "You didn't provide an API key. Provide it as 'Authorization: Bearer KEY'."
                : "Incorrect API key provided.", "invalid_request_error", null, "invalid_api_key"));
        return false;
    }

    private void health(RoutingContext ctx) {
        String why = service.whyNotServing();
        if (why == null) {
            ctx.response().putHeader("Content-Type", "application/json").end("{\"status\":\"ok\",\"model\":\"" + service.model().name() + "\"}");
        } else {
            error(ctx, ErrorInfo.unavailable(why));
        }
    }

    private void models(RoutingContext ctx) {
        if (!authorized(ctx)) {
            return;
        }
        ObjectNode r = JSON.createObjectNode();
        r.put("object", "list");
        ObjectNode m = r.putArray("data").addObject();
        m.put("id", service.model().name());
        m.put("object", "model");
        m.put("created", service.startedAt());
        m.put("owned_by", "kimi-serve");
        m.put("root", service.model().name());
        m.put("max_model_len", service.model().maxModelLen());
        ctx.response().putHeader("Content-Type", "application/json").end(r.toString());
    }

    private void generate(RoutingContext ctx, String endpoint) {
        long arrival = System.nanoTime();
        if (!authorized(ctx)) {
            return;
        }
        String why = service.whyNotServing();
        if (why != null) {
            error(ctx, ErrorInfo.unavailable("The service is not ready: " + why + "."));
            return;
        }
        JsonNode body;
        try {
            body = ctx.body().buffer() == null ? null : JSON.readTree(ctx.body().buffer().getBytes());
        } catch (IOException e) {
            String detail = e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
            error(ctx, ErrorInfo.badRequest("We could not parse the JSON body of your request: " + detail, null));
            return;
        }
        GenerationSpec spec;
        try {
            spec = new RequestParser(service.model()).parse(endpoint, body);
        } catch (ApiException e) {
            error(ctx, e.error());
            return;
        }
        String id = (endpoint.equals(RequestEnvelope.CHAT) ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
        new Exchange(ctx, id, spec, arrival).start(endpoint, body);
    }

    /** One request in flight: its assembly, its response, its timings. Touched only on its Vert.x context. */
    private final class Exchange {
        final RoutingContext ctx;
        final HttpServerResponse resp;
        final String id;
        final GenerationSpec spec;
        final ResponseAssembly assembly;
        final Context context;
        final long arrival;
        final long[] lastToken;
        boolean headersSent;
        boolean done;
        long timer;

        Exchange(RoutingContext ctx, String id, GenerationSpec spec, long arrival) {
            this.ctx = ctx;
            this.resp = ctx.response();
            this.id = id;
            this.spec = spec;
            this.arrival = arrival;
            this.assembly = new ResponseAssembly(id, spec, service.model().tokenizer());
            this.context = vertx.getOrCreateContext();
            this.lastToken = new long[spec.n()];
        }

        void start(String endpoint, JsonNode body) {
            resp.closeHandler(v -> {
                if (!done) {
                    done = true;
                    vertx.cancelTimer(timer);
                    service.runtime().cancel(id);
                }
            });
            timer = vertx.setTimer(config.gateway().requestTimeoutMs(), t -> context.runOnContext(v ->
                    onEvent(new TokenEvent(Codec.VERSION, id, 0, 0, null, null, null, null, null, null,
                            new ErrorInfo(504, "The request timed out.", "timeout", null, "timeout"), null))));
            metrics.promptTokens.increment(spec.promptTokenIds().length);
            service.runtime().submit(new RequestEnvelope(Codec.VERSION, id, endpoint, body, spec, service.runtime().replyPartition(),
                    System.currentTimeMillis()), e -> context.runOnContext(v -> onEvent(e)));
        }

        void onEvent(TokenEvent e) {
            if (done || !assembly.accept(e)) {
                return;
            }
            long now = System.nanoTime();
            if (e.tokenId() != null) {
                metrics.generationTokens.increment();
                if (lastToken[e.choice()] == 0) {
                    if (e.choice() == 0) {
                        metrics.ttft.record(now - arrival, TimeUnit.NANOSECONDS);
                    }
                } else {
                    metrics.itl.record(now - lastToken[e.choice()], TimeUnit.NANOSECONDS);
                }
                lastToken[e.choice()] = now;
            }
            if (e.error() != null && !headersSent) {
                finish();
                metrics.failed(e.error().status());
                error(ctx, e.error());
                return;
            }
            if (spec.stream()) {
                if (!headersSent) {
                    resp.setChunked(true).putHeader("Content-Type", "text/event-stream").putHeader("Cache-Control", "no-cache")
                            .putHeader("X-Request-Id", id);
                    headersSent = true;
                }
                StringBuilder sb = new StringBuilder();
                for (String chunk : assembly.chunksFor(e)) {
                    sb.append("data: ").append(chunk).append("\n\n");
                }
                if (assembly.complete()) {
                    sb.append("data: [DONE]\n\n");
                    finish();
                    resp.end(sb.toString());
                } else {
                    resp.write(sb.toString());
                }
            } else if (assembly.complete()) {
                finish();
                resp.putHeader("Content-Type", "application/json").putHeader("X-Request-Id", id).end(assembly.finalResponse().toString());
            }
        }

        void finish() {
            done = true;
            vertx.cancelTimer(timer);
            service.runtime().release(id);
            metrics.e2e.record(System.nanoTime() - arrival, TimeUnit.NANOSECONDS);
            if (assembly.error() == null) {
                metrics.finished(spec.n() == 1 ? String.valueOf(assembly.finalResponse().path("choices").path(0).path("finish_reason").asText()) : "stop");
            }
        }
    }

    static void error(RoutingContext ctx, ErrorInfo e) {
        HttpServerResponse r = ctx.response();
        if (r.ended() || r.closed()) {
            return;
        }
        r.setStatusCode(e.status()).putHeader("Content-Type", "application/json");
        if (e.status() == 429) {
            r.putHeader("Retry-After", "1");
        }
        r.end(ResponseAssembly.errorJson(e));
    }
}
