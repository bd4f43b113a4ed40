package dev.kimiserve.protocol;

/**
 * An OpenAI error object plus the HTTP status it goes with:
 * {@code {"error": {"message", "type", "param", "code"}}}.
 */
public record ErrorInfo(int status, String message, String type, String param, String code) {
    public static ErrorInfo badRequest(String message, String param) {
        return new ErrorInfo(400, message, "invalid_request_error", param, null);
    }

    public static ErrorInfo server(String message) {
        return new ErrorInfo(500, message, "server_error", null, null);
    }

    public static ErrorInfo overloaded(String message) {
        return new ErrorInfo(429, message, "rate_limit_exceeded", null, "queue_full");
    }

    public static ErrorInfo unavailable(String message) {
        return new ErrorInfo(503, message, "service_unavailable", null, null);
    }
}
