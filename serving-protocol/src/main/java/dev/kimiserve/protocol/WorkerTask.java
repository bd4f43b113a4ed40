package dev.kimiserve.protocol;

/**
 * A task for one worker, on its topic {@link Topics#workerTasks} (key = sequence id).
 * <ul>
 *   <li>{@code prefill}: run the prompt, sample the first token, store the state under {@code stateKey} in the kv-store
 *       and report {@code prefill_done};</li>
 *   <li>{@code decode}: load the state under {@code stateKey}, replay {@code generated} (the tokens already sampled and
 *       sent, fed back so that the state and the sampler continue exactly) and generate the rest.</li>
 * </ul>
 *
 * @param attempt 0 first time; +1 each time the scheduler re-dispatches after a worker failure
 */
public record WorkerTask(int v, String type, String requestId, int choice, String sequenceId, GenerationSpec spec,
                         Integer replyPartition, String stateKey, int[] generated, int attempt) implements Codec.Versioned {
    public static final String PREFILL = "prefill";
    public static final String DECODE = "decode";

    public WorkerTask {
        if (v == 0) {
            v = Codec.VERSION;
        }
    }
}
