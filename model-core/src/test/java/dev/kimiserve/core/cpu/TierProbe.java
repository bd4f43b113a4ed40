package dev.kimiserve.core.cpu;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.testing.TinyA;
import java.util.Random;
import java.util.zip.CRC32;
import jdk.incubator.vector.FloatVector;

/**
 * Prints a checksum of the bits the CPU engine computes (tiny-a: a 70-token prefill (past one KDA chunk), then decode steps) and of
 * {@link VecMath} over a sweep of inputs. Run in a JVM with {@code -Xint}, it shows what the kernels give before any
 * JIT compilation; the test compares that with the same run in a warmed-up JVM.
 */
public final class TierProbe {
    private TierProbe() {
    }

    public static void main(String[] args) {
        System.out.println("FINGERPRINT " + fingerprint());
    }

    static String fingerprint() {
        return "vecmath=" + vecMath() + " engine=" + engine();
    }

    static long vecMath() {
        CRC32 crc = new CRC32();
        Random r = new Random(5);
        float[] x = new float[Vec.L];
        float[] out = new float[Vec.L];
        for (int rep = 0; rep < 200; rep++) {
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextGaussian() * (rep % 4 == 0 ? 40 : 4));
            }
            FloatVector v = FloatVector.fromArray(Vec.F, x, 0);
            update(crc, VecMath.sum(v));
            for (FloatVector f : new FloatVector[]{VecMath.exp(v), VecMath.sigmoid(v), VecMath.softplus(v)}) {
                f.intoArray(out, 0);
                for (float o : out) {
                    update(crc, o);
                }
            }
        }
        return crc.getValue();
    }

    static long engine() {
        CRC32 crc = new CRC32();
        try (TinyA tiny = new TinyA(); Engine engine = Backends.create("cpu", tiny.model.weights(), 1)) {
            SequenceState state = engine.newState();
            float[] logits = engine.prefill(java.util.Arrays.copyOf(tiny.prompt(150), 70), state, Engine.Logits.LAST);
            for (int step = 0; step < 3; step++) {
                for (float f : logits) {
                    update(crc, f);
                }
                int next = argmax(logits);
                float[] out = new float[logits.length];
                engine.decode(new int[]{next}, new SequenceState[]{state}, out);
                logits = out;
            }
        }
        return crc.getValue();
    }

    private static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }

    private static void update(CRC32 crc, float f) {
        int bits = Float.floatToRawIntBits(f);
        crc.update(new byte[]{(byte) bits, (byte) (bits >> 8), (byte) (bits >> 16), (byte) (bits >> 24)});
    }
}
