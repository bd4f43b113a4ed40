package dev.kimiserve.cuda;

/** No usable CUDA device here; the message says why (the backend selector logs it and falls back). */
public final class CudaUnavailableException extends RuntimeException {
    public CudaUnavailableException(String reason) {
        super(reason);
    }
}
