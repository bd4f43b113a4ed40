package dev.kimiserve.core.tensor;

import java.util.Optional;

/**
 * Element types of the safetensors format. Every dtype the format defines is known (so headers of any valid file
 * validate); {@link #isFloatingPoint()} says which ones model-core computes with.
 */
public enum DType {
    BOOL(1), U8(1), I8(1), F8_E4M3(1), F8_E5M2(1),
    I16(2), U16(2), F16(2), BF16(2),
    I32(4), U32(4), F32(4),
    I64(8), U64(8), F64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    /** The dtypes the engine reads as numbers: BF16, F16, F32 (weights) and F64. */
    public boolean isFloatingPoint() {
        return this == BF16 || this == F16 || this == F32 || this == F64;
    }

    /** The safetensors spelling ("BF16", "F32", ...). */
    public String safetensorsName() {
        return name();
    }

    public static Optional<DType> fromSafetensorsName(String name) {
        for (DType d : values()) {
            if (d.name().equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }
}
