package dev.kimiserve.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** A minimal OpenAI HTTP client: JSON requests and SSE streams, with status codes kept. */
final class OpenAi {
    static final ObjectMapper JSON = new ObjectMapper();
    final String base;
    final String apiKey;
    final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    OpenAi(String base) {
        this(base, null);
    }

    /** A client that sends "Authorization: Bearer apiKey" (null: no header). */
    OpenAi(String base, String apiKey) {
        this.base = base;
        this.apiKey = apiKey;
    }

    OpenAi withKey(String key) {
        return new OpenAi(base, key);
    }

    private HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path));
        return apiKey == null ? b : b.header("Authorization", "Bearer " + apiKey);
    }

    record Reply(int status, JsonNode body, Map<String, List<String>> headers) {
    }

    Reply post(String path, String json, String... headers) {
        try {
            HttpRequest.Builder b = request(path).timeout(Duration.ofMinutes(2))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json));
            for (int i = 0; i < headers.length; i += 2) {
                b.header(headers[i], headers[i + 1]);
            }
            HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
            JsonNode body = r.body().isEmpty() ? null : JSON.readTree(r.body());
            return new Reply(r.statusCode(), body, r.headers().map());
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("POST " + path + " failed: " + e, e);
        }
    }

    Reply get(String path) {
        try {
            HttpResponse<String> r = http.send(request(path).timeout(Duration.ofSeconds(30)).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            return new Reply(r.statusCode(), r.body().isEmpty() ? null : JSON.readTree(r.body()), r.headers().map());
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("GET " + path + " failed: " + e, e);
        }
    }

    /** A streamed response: status, the parsed data chunks, whether [DONE] arrived. */
    record Stream(int status, List<JsonNode> chunks, boolean done, String raw) {
        /** token_ids of choice 0 concatenated over the chunks, in arrival order. */
        List<Integer> tokenIds(int choice) {
            List<Integer> ids = new ArrayList<>();
            for (JsonNode c : chunks) {
                for (JsonNode ch : c.path("choices")) {
                    if (ch.path("index").asInt() == choice) {
                        ch.path("token_ids").forEach(t -> ids.add(t.asInt()));
                    }
                }
            }
            return ids;
        }
    }

    /** Posts a streaming request; {@code onChunk} sees each chunk as it arrives (return false to disconnect). */
    Stream stream(String path, String json, java.util.function.Predicate<JsonNode> onChunk) {
        try {
            HttpResponse<InputStream> r = http.send(request(path).timeout(Duration.ofMinutes(3))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build(),
                    HttpResponse.BodyHandlers.ofInputStream());
            List<JsonNode> chunks = new ArrayList<>();
            StringBuilder raw = new StringBuilder();
            boolean done = false;
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    raw.append(line).append('\n');
                    if (!line.startsWith("data: ")) {
                        continue;
                    }
                    String data = line.substring(6);
                    if (data.equals("[DONE]")) {
                        done = true;
                        break;
                    }
                    JsonNode chunk = JSON.readTree(data);
                    chunks.add(chunk);
                    if (onChunk != null && !onChunk.test(chunk)) {
                        break;
                    }
                }
            }
            return new Stream(r.statusCode(), chunks, done, raw.toString());
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("stream " + path + " failed: " + e, e);
        }
    }

    static List<Integer> ints(JsonNode arr) {
        List<Integer> out = new ArrayList<>();
        arr.forEach(n -> out.add(n.asInt()));
        return out;
    }
}
