package dev.kimiserve.core.safetensors;

import dev.kimiserve.core.tensor.DType;
import java.util.Arrays;

/** One entry of a safetensors header: dtype, shape and byte range [begin, end) relative to the data section. */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
    public TensorInfo {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long byteSize() {
        return end - begin;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape) + " @[" + begin + "," + end + ")";
    }
}
