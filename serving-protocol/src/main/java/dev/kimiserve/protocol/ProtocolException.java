package dev.kimiserve.protocol;

/** A message that cannot be read: malformed, or a version this build does not know. */
public class ProtocolException extends RuntimeException {
    public ProtocolException(String message) {
        super(message);
    }
}
