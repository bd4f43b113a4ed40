package dev.kimiserve.runtime.openai;

import dev.kimiserve.protocol.ErrorInfo;

/** A request the API refuses, with the OpenAI error object and HTTP status to answer with. */
public class ApiException extends RuntimeException {
    private final ErrorInfo error;

    public ApiException(ErrorInfo error) {
        super(error.message());
        this.error = error;
    }

    public ErrorInfo error() {
        return error;
    }

    public static ApiException badRequest(String message, String param) {
        return new ApiException(ErrorInfo.badRequest(message, param));
    }

    public static ApiException notFound(String message, String param, String code) {
        return new ApiException(new ErrorInfo(404, message, "invalid_request_error", param, code));
    }
}
