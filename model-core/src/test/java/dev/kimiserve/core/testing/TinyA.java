package dev.kimiserve.core.testing;

import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.safetensors.SafetensorsFile;
import java.nio.file.Path;

/** The tiny-a fixture: model and transformers' reference outputs (see ../shared/fixtures/README.md). */
public final class TinyA implements AutoCloseable {
    public static final int[] PREFILL_CASES = {1, 7, 64, 150};
    public static final int[] GENERATION_CASES = {7, 150};

    public final LoadedModel model;
    public final SafetensorsFile expected;

    public TinyA() {
        Path dir = SharedFixtures.tinyA();
        this.model = LoadedModel.open(dir);
        this.expected = SafetensorsFile.open(dir.resolve("expected.safetensors"));
    }

    public int[] ids(String name) {
        long[] raw = expected.tensor(name).toLongArray();
        int[] ids = new int[raw.length];
        for (int i = 0; i < raw.length; i++) {
            ids[i] = Math.toIntExact(raw[i]);
        }
        return ids;
    }

    public int[] prompt(int length) {
        return ids("prefill." + length + ".input_ids");
    }

    public float[] floats(String name) {
        return expected.tensor(name).toFloatArray();
    }

    @Override
    public void close() {
        expected.close();
        model.close();
    }
}
