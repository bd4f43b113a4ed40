package dev.kimiserve.protocol;

import java.util.List;

/**
 * Everything on {@link Topics#CONTROL}: small typed messages that every service reads.
 * <ul>
 *   <li>{@code cancel} (requestId): free the request everywhere (client gone, deadline passed);</li>
 *   <li>{@code heartbeat} (workerId, role, capacity, running, sequences, instance): a worker is alive and what it holds;
 *       {@code instance} changes when a worker restarts under the same id, so the scheduler re-dispatches what the old
 *       process held;</li>
 *   <li>{@code prefill_done} (sequenceId, workerId, stateKey, generated): the prompt state is in the kv-store, the
 *       first token(s) sent; the scheduler hands the sequence to a decode worker;</li>
 *   <li>{@code sequence_done} (sequenceId, workerId, finishReason): a choice finished;</li>
 *   <li>{@code sequence_failed} (sequenceId, workerId, error): a worker could not run a task.</li>
 * </ul>
 *
 * @param role "prefill", "decode" or "combined"
 */
public record ControlMessage(int v, String type, String requestId, String sequenceId, String workerId, String role,
                             Integer capacity, Integer running, List<String> sequences, String stateKey, int[] generated,
                             String finishReason, ErrorInfo error, Long sentAtMillis, String instance) implements Codec.Versioned {
    public static final String CANCEL = "cancel";
    public static final String HEARTBEAT = "heartbeat";
    public static final String PREFILL_DONE = "prefill_done";
    public static final String SEQUENCE_DONE = "sequence_done";
    public static final String SEQUENCE_FAILED = "sequence_failed";

    public ControlMessage {
        if (v == 0) {
            v = Codec.VERSION;
        }
    }

    public static ControlMessage cancel(String requestId) {
        return new ControlMessage(Codec.VERSION, CANCEL, requestId, null, null, null, null, null, null, null, null, null, null,
                System.currentTimeMillis(), null);
    }

    public static ControlMessage heartbeat(String workerId, String instance, String role, int capacity, int running, List<String> sequences) {
        return new ControlMessage(Codec.VERSION, HEARTBEAT, null, null, workerId, role, capacity, running, sequences, null, null,
                null, null, System.currentTimeMillis(), instance);
    }

    public static ControlMessage prefillDone(String requestId, String sequenceId, String workerId, String stateKey, int[] generated) {
        return new ControlMessage(Codec.VERSION, PREFILL_DONE, requestId, sequenceId, workerId, null, null, null, null, stateKey,
                generated, null, null, System.currentTimeMillis(), null);
    }

    public static ControlMessage sequenceDone(String requestId, String sequenceId, String workerId, String finishReason) {
        return new ControlMessage(Codec.VERSION, SEQUENCE_DONE, requestId, sequenceId, workerId, null, null, null, null, null, null,
                finishReason, null, System.currentTimeMillis(), null);
    }

    public static ControlMessage sequenceFailed(String requestId, String sequenceId, String workerId, ErrorInfo error) {
        return new ControlMessage(Codec.VERSION, SEQUENCE_FAILED, requestId, sequenceId, workerId, null, null, null, null, null, null,
                null, error, System.currentTimeMillis(), null);
    }
}
