package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.testing.TinyA;
import java.util.SplittableRandom;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;
import org.junit.jupiter.api.Test;

/** Decode steps replayed from CUDA graphs equal the same launches made one by one, bit for bit. */
class CudaGraphTest extends GpuTest {
    @Test
    void capturedLaunchesReadTheirBuffersWhenReplayed() {
        EngineKernels k = new EngineKernels(device, module("engine"));
        SplittableRandom rnd = new SplittableRandom(3);
        int rows = 3, n = 40, dim = 64;
        short[] table = randomBf16(rnd, n * dim, 1.0);
        try (DeviceBuffer t = DeviceBuffer.of(device, table); DeviceBuffer ids = DeviceBuffer.allocate(device, 4L * rows);
             DeviceBuffer h = DeviceBuffer.allocate(device, 4L * rows * dim); DeviceBuffer y = DeviceBuffer.allocate(device, 4L * rows * n)) {
            CUgraph graph = new CUgraph();
            cuStreamBeginCapture(device.stream(), CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
            k.embedRows(rows, t, ids, h, dim);
            k.gemv(h, dim, t, y, n, rows, n, dim, false);
            cuStreamEndCapture(device.stream(), graph);
            CUgraphExec exec = new CUgraphExec();
            cuGraphInstantiate(exec, graph, 0);
            cuGraphDestroy(graph);
            for (int step = 0; step < 3; step++) {
                int[] tokens = rnd.ints(rows, 0, n).toArray();
                ids.upload(tokens, rows);
                k.embedRows(rows, t, ids, h, dim);
                k.gemv(h, dim, t, y, n, rows, n, dim, false);
                float[] eager = new float[rows * n];
                y.download(eager);
                y.fill(0f);
                cuGraphLaunch(exec, device.stream());
                float[] replayed = new float[rows * n];
                y.download(replayed);
                assertArrayEquals(eager, replayed, "step " + step);
            }
            cuGraphExecDestroy(exec);
        }
    }

    /** One graph replayed for different sequences in turn (different slots, pages and positions). */
    @Test
    void oneGraphServesSequencesInTurn() {
        try (TinyA tiny = new TinyA();
             CudaEngine eager = new CudaEngine(tiny.model.weights(), device, new CudaEngine.Options(4, 4096, 1024, 0, 0, false, false));
             CudaEngine graphs = new CudaEngine(tiny.model.weights(), device, new CudaEngine.Options(4, 4096, 1024, 0, 0, false, true))) {
            int n = 3;
            SequenceState[] a = new SequenceState[n];
            SequenceState[] b = new SequenceState[n];
            for (int i = 0; i < n; i++) {
                int[] prompt = java.util.Arrays.copyOf(tiny.prompt(64), 20 + 9 * i);
                a[i] = eager.newState();
                b[i] = graphs.newState();
                assertArrayEquals(eager.prefill(prompt, a[i], Engine.Logits.LAST), graphs.prefill(prompt, b[i], Engine.Logits.LAST));
            }
            for (int step = 0; step < 6; step++) {
                int i = step % n;
                graphs.prefill(new int[]{1, 2, 3}, graphs.newState(), Engine.Logits.ALL);   // a state dropped at once
                System.gc();
                float[] x = eager.decode(5 + step, a[i]);
                float[] y = graphs.decode(5 + step, b[i]);
                System.out.printf("in turn: step %d sequence %d: max |diff| %.3g%n", step, i, dev.kimiserve.core.testing.Assertions2.maxAbsDiff(x, y));
            }
            for (int i = 0; i < n; i++) {
                assertArrayEquals(eager.decode(1, a[i]), graphs.decode(1, b[i]), "sequence " + i);
            }
        }
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "tiny-a, {0} sequences, prompt {1}, cuBLASLt from {2} rows")
    @org.junit.jupiter.params.provider.CsvSource({"1, 7, 0", "3, 7, 0", "1, 150, 64", "3, 150, 0"})
    void tinyADecodeWithGraphsEqualsWithout(int batch, int promptLength, int cublasFromRows) {
        try (TinyA tiny = new TinyA();
             CudaEngine eager = new CudaEngine(tiny.model.weights(), device, new CudaEngine.Options(4, 4096, 1024, cublasFromRows, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, false, false));
             CudaEngine graphs = new CudaEngine(tiny.model.weights(), device, new CudaEngine.Options(4, 4096, 1024, cublasFromRows, CudaEngine.Options.DEFAULT_TC_FROM_ROWS, false, true))) {
            int vocab = tiny.model.config().vocabSize();
            SequenceState[] a = new SequenceState[batch];
            SequenceState[] b = new SequenceState[batch];
            for (int i = 0; i < batch; i++) {
                int[] prompt = java.util.Arrays.copyOf(tiny.prompt(promptLength), promptLength - i);
                a[i] = eager.newState();
                b[i] = graphs.newState();
                assertArrayEquals(eager.prefill(prompt, a[i], Engine.Logits.LAST), graphs.prefill(prompt, b[i], Engine.Logits.LAST));
            }
            for (int step = 0; step < 4; step++) {
                int[] tokens = new int[batch];
                for (int i = 0; i < batch; i++) {
                    tokens[i] = 11 + 17 * step + 5 * i;
                }
                float[] x = new float[batch * vocab];
                float[] y = new float[batch * vocab];
                eager.decode(tokens, a, x);
                graphs.decode(tokens, b, y);
                for (int i = 0; i < batch; i++) {
                    System.out.printf("graph decode B=%d step %d row %d: max |diff| %.3g%n", batch, step, i, dev.kimiserve.core.testing.Assertions2.maxAbsDiff(
                            java.util.Arrays.copyOfRange(x, i * vocab, (i + 1) * vocab), java.util.Arrays.copyOfRange(y, i * vocab, (i + 1) * vocab)));
                }
            }
            for (int i = 0; i < batch; i++) {
                System.out.printf("positions %d / %d%n", a[i].position(), b[i].position());
            }
            float[] x = new float[batch * vocab];
            float[] y = new float[batch * vocab];
            eager.decode(new int[batch], a, x);
            graphs.decode(new int[batch], b, y);
            assertArrayEquals(x, y);
        }
    }
}
