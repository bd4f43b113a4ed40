package dev.kimiserve.runtime.worker;

import java.nio.file.Path;

/**
 * How a worker runs.
 *
 * @param role            "prefill", "decode" or "combined" (both)
 * @param maxRunning      decode sequences batched together at most
 * @param prefillChunk    prompt tokens per prefill step (decode steps run between chunks of a long prompt)
 * @param heartbeatMillis interval of heartbeats on kimi.control
 */
public record WorkerConfig(String workerId, String role, Path modelDir, String bootstrap, String kvStoreUrl, int threads,
                           int maxRunning, int prefillChunk, long heartbeatMillis) {
    public WorkerConfig {
        if (!role.equals("prefill") && !role.equals("decode") && !role.equals("combined")) {
            throw new IllegalArgumentException("worker role must be prefill, decode or combined, got " + role);
        }
        if (maxRunning <= 0 || prefillChunk <= 0 || threads <= 0) {
            throw new IllegalArgumentException("max-running, prefill-chunk and threads must be > 0");
        }
    }

    public boolean prefills() {
        return !role.equals("decode");
    }

    public boolean decodes() {
        return !role.equals("prefill");
    }
}
