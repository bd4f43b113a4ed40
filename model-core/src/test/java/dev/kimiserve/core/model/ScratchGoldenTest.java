package dev.kimiserve.core.model;

import dev.kimiserve.core.reference.ReferenceEngine;
import dev.kimiserve.core.safetensors.SafetensorsFile;
import dev.kimiserve.core.testing.Assertions2;
import dev.kimiserve.core.testing.SharedFixtures;
import org.junit.jupiter.api.Test;

class ScratchGoldenTest {
    @Test
    void reference() {
        try (LoadedModel m = LoadedModel.open(SharedFixtures.tinyA());
             SafetensorsFile exp = SafetensorsFile.open(SharedFixtures.tinyA().resolve("expected.safetensors"))) {
            ReferenceEngine e = new ReferenceEngine(m.weights());
            for (int len : new int[]{1, 7, 64, 150}) {
                long[] ids = exp.tensor("prefill." + len + ".input_ids").toLongArray();
                int[] tok = new int[ids.length];
                for (int i = 0; i < ids.length; i++) tok[i] = (int) ids[i];
                float[][] hid = new float[5][];
                float[] logits = e.prefill(tok, e.newState(), Engine.Logits.ALL, new ForwardObserver() {
                    public void hidden(int index, float[] v, int r, int d) { if (index < 4) hid[index] = v.clone(); }
                    public void finalNorm(float[] v, int r, int d) { hid[4] = v.clone(); }
                });
                for (int i = 0; i < 5; i++) {
                    System.out.println(len + " hidden." + i + " maxdiff " + Assertions2.maxAbsDiff(exp.tensor("prefill." + len + ".hidden." + i).toFloatArray(), hid[i]));
                }
                System.out.println(len + " logits maxdiff " + Assertions2.maxAbsDiff(exp.tensor("prefill." + len + ".logits").toFloatArray(), logits));
            }
        }
    }
}
