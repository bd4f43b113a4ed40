package dev.kimiserve.runtime.kvstore;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Optional;

/**
 * Client of the kv-store's blob API: {@code PUT /v1/blobs/{key}} (the server verifies checksum and layout version),
 * {@code GET} and {@code DELETE}. Keys are URL-safe (sequence ids are percent-encoded).
 */
public final class KvStoreClient implements KvStore {
    private final URI base;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    public KvStoreClient(String baseUrl) {
        this.base = URI.create(baseUrl.endsWith("/") ? baseUrl : baseUrl + "/");
    }

    private URI blob(String key) {
        return base.resolve("v1/blobs/" + java.net.URLEncoder.encode(key, java.nio.charset.StandardCharsets.UTF_8));
    }

    @Override
    public void put(String key, byte[] blob) {
        HttpResponse<String> r = send(HttpRequest.newBuilder(blob(key)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/octet-stream").PUT(HttpRequest.BodyPublishers.ofByteArray(blob)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new KvStoreException("kv-store refused " + key + ": HTTP " + r.statusCode() + " " + r.body(), r.statusCode());
        }
    }

    /** The blob, or empty when the store does not have it. */
    @Override
    public Optional<byte[]> get(String key) {
        HttpResponse<byte[]> r = send(HttpRequest.newBuilder(blob(key)).timeout(Duration.ofSeconds(30)).GET().build(),
                HttpResponse.BodyHandlers.ofByteArray());
        if (r.statusCode() == 404) {
            return Optional.empty();
        }
        if (r.statusCode() / 100 != 2) {
            throw new KvStoreException("kv-store failed to return " + key + ": HTTP " + r.statusCode(), r.statusCode());
        }
        return Optional.of(r.body());
    }

    @Override
    public void delete(String key) {
        send(HttpRequest.newBuilder(blob(key)).timeout(Duration.ofSeconds(10)).DELETE().build(), HttpResponse.BodyHandlers.discarding());
    }

    /** Whether the store answers its readiness check. */
    @Override
    public boolean reachable() {
        try {
            HttpResponse<Void> r = http.send(HttpRequest.newBuilder(base.resolve("q/health/ready")).timeout(Duration.ofSeconds(2)).GET().build(),
                    HttpResponse.BodyHandlers.discarding());
            return r.statusCode() == 200;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private <T> HttpResponse<T> send(HttpRequest req, HttpResponse.BodyHandler<T> handler) {
        try {
            return http.send(req, handler);
        } catch (IOException e) {
            throw new KvStoreException("kv-store unreachable at " + base + ": " + e.getMessage(), 0);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KvStoreException("interrupted talking to the kv-store", 0);
        }
    }

    /** A kv-store request that failed; status 0 when the store could not be reached. */
    public static final class KvStoreException extends RuntimeException {
        private final int status;

        public KvStoreException(String message, int status) {
            super(message);
            this.status = status;
        }

        public int status() {
            return status;
        }
    }
}
