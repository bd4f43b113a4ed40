package dev.kimiserve.core.state;

/** A state blob that cannot be used: corrupted, truncated, another layout version or another model's shapes. */
public class StateFormatException extends RuntimeException {
    public StateFormatException(String message) {
        super(message);
    }
}
