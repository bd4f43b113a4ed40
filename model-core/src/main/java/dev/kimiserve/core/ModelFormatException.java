package dev.kimiserve.core;

import java.nio.file.Path;

/**
 * A model file (config.json, a safetensors file, an index) that cannot be used. The message always names the file
 * and the field or tensor at fault, so that a user can fix the checkpoint without reading our code.
 */
public class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }

    public static ModelFormatException of(Path file, String what) {
        return new ModelFormatException(file + ": " + what);
    }

    public static ModelFormatException of(Path file, String what, Throwable cause) {
        return new ModelFormatException(file + ": " + what, cause);
    }
}
