package dev.kimiserve.protocol;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * JSON serialisation of every message that crosses services: snake_case fields, nulls omitted, unknown fields ignored
 * (so that a newer sender can add fields), and a version field {@code v} checked on read.
 */
public final class Codec {
    /** Version of the message formats written by this build. */
    public static final int VERSION = 1;
    public static final ObjectMapper JSON = new ObjectMapper()
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .setSerializationInclusion(JsonInclude.Include.NON_NULL)
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private Codec() {
    }

    public static byte[] write(Object message) {
        try {
            return JSON.writeValueAsBytes(message);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialise " + message.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    public static String writeString(Object message) {
        return new String(write(message), StandardCharsets.UTF_8);
    }

    /** Reads a message; a version newer than this build's, or malformed JSON, is a {@link ProtocolException}. */
    public static <T extends Versioned> T read(byte[] bytes, Class<T> type) {
        T m;
        try {
            m = JSON.readValue(bytes, type);
        } catch (IOException e) {
            throw new ProtocolException("malformed " + type.getSimpleName() + ": " + e.getMessage());
        }
        if (m == null) {
            throw new ProtocolException("empty " + type.getSimpleName());
        }
        if (m.v() > VERSION) {
            throw new ProtocolException(type.getSimpleName() + " version " + m.v() + " is newer than this build reads (" + VERSION + ")");
        }
        return m;
    }

    /** A message with a format version. */
    public interface Versioned {
        int v();
    }
}
