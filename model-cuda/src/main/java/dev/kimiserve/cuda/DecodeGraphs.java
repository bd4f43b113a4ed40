package dev.kimiserve.cuda;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;

/**
 * Decode steps as CUDA graphs: the launches of a step are recorded once per key (everything the launches' arguments
 * depend on: batch size, page-table width) and replayed with one launch afterwards. The launches read their inputs from
 * device buffers that each step refills, so a replay computes the new step.
 */
final class DecodeGraphs implements AutoCloseable {
    private final CudaDevice device;
    private final Map<Long, CUgraphExec> graphs = new HashMap<>();

    DecodeGraphs(CudaDevice device) {
        this.device = device;
    }

    /** Replays the graph of {@code key}, recording it from {@code launches} first if there is none. */
    void launch(long key, Runnable launches) {
        CUgraphExec exec = graphs.get(key);
        if (exec == null) {
            exec = capture(launches);
            graphs.put(key, exec);
        }
        cuGraphLaunch(exec, device.stream());
    }

    /** Records the launches {@code work} makes on the stream (nothing runs) and instantiates them. */
    private CUgraphExec capture(Runnable work) {
        CUgraph graph = new CUgraph();
        cuStreamBeginCapture(device.stream(), CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        try {
            work.run();
        } finally {
            cuStreamEndCapture(device.stream(), graph);
        }
        CUgraphExec exec = new CUgraphExec();
        cuGraphInstantiate(exec, graph, 0);
        cuGraphDestroy(graph);
        return exec;
    }

    /** Forgets every graph (their arguments point at buffers that are going away). */
    void clear() {
        graphs.values().forEach(e -> cuGraphExecDestroy(e));
        graphs.clear();
    }

    @Override
    public void close() {
        clear();
    }
}
