package dev.kimiserve.runtime.scheduler;

import dev.kimiserve.protocol.Codec;
import dev.kimiserve.protocol.ControlMessage;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.TokenEvent;
import dev.kimiserve.protocol.WorkerTask;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;

/**
 * The scheduler's decisions, free of Kafka and threads (the runtime feeds it messages and carries out its actions):
 * admission (waiting and running limits), priority order, prefill dispatch to the least-loaded prefill worker, hand-off
 * of finished prefills to the least-loaded decode worker, worker liveness from heartbeats and re-dispatch of a dead
 * worker's sequences (the state stays in the kv-store; the new worker replays the tokens already sent and answerers
 * drop duplicate indices, so the client sees every token exactly once), deadlines and cancellation.
 * Not thread-safe: one thread drives it.
 */
public final class SchedulerCore {
    /**
     * @param maxWaiting          requests queued before admission at most; more get 429
     * @param maxRunning          sequences between prefill and the end of decode at most
     * @param maxRunningTokens    token budget: the admitted requests' prompt plus max_tokens, summed over their choices,
     *                            at most (0 = no budget); a request larger than the whole budget runs alone
     * @param workerTimeoutMillis a worker silent for this long is dead
     * @param requestTimeoutMillis a request not finished after this long fails (0 = never)
     * @param noWorkerGraceMillis requests that need a pool with no live worker fail with 503 once it has been empty
     *                            this long (time for a restarted worker to come back)
     */
    public record Limits(int maxWaiting, int maxRunning, long maxRunningTokens, long workerTimeoutMillis, long requestTimeoutMillis,
                         long noWorkerGraceMillis) {
    }

    /** Something the runtime must do. */
    public sealed interface Action permits SendTask, SendEvent, Broadcast, Finished, Admitted {
    }

    /** A request left the waiting queue after {@code queuedMillis} (the vllm:request_queue_time_seconds metric). */
    public record Admitted(String requestId, long queuedMillis) implements Action {
    }

    /** Send a task to a worker's topic. */
    public record SendTask(String workerId, WorkerTask task) implements Action {
    }

    /** Send a token event (an error) to whoever answers the request. */
    public record SendEvent(String requestId, Integer replyPartition, TokenEvent event) implements Action {
    }

    /** Publish a control message (cancel) to every service. */
    public record Broadcast(ControlMessage message) implements Action {
    }

    /** The request left the scheduler (done, failed or cancelled). */
    public record Finished(String requestId) implements Action {
    }

    enum Phase { WAITING, PREFILLING, HANDOFF, DECODING, DONE }

    static final class Request {
        final String id;
        final GenerationSpec spec;
        final Integer reply;
        final long arrival;
        final long seq;
        int remaining;
        boolean admitted;

        Request(String id, GenerationSpec spec, Integer reply, long arrival, long seq) {
            this.id = id;
            this.spec = spec;
            this.reply = reply;
            this.arrival = arrival;
            this.seq = seq;
            this.remaining = spec.n();
        }
    }

    static final class Seq {
        final String id;
        final Request req;
        final int choice;
        Phase phase = Phase.WAITING;
        String worker;
        String stateKey;
        int[] generated;
        int attempt;

        Seq(String id, Request req, int choice) {
            this.id = id;
            this.req = req;
            this.choice = choice;
        }
    }

    static final class Worker {
        final String id;
        String role;
        String instance;
        int capacity;
        long lastSeen;
        final Set<String> assigned = new LinkedHashSet<>();

        Worker(String id) {
            this.id = id;
        }

        boolean prefills() {
            return !"decode".equals(role);
        }

        boolean decodes() {
            return !"prefill".equals(role);
        }

        int free() {
            return capacity - assigned.size();
        }
    }

    private final Limits limits;
    private final Map<String, Request> requests = new HashMap<>();
    private final Map<String, Seq> sequences = new HashMap<>();
    private final Map<String, Worker> workers = new LinkedHashMap<>();
    private final PriorityQueue<Request> waiting = new PriorityQueue<>(
            Comparator.<Request>comparingInt(r -> r.spec.priority()).thenComparingLong(r -> r.seq));
    private final Deque<Seq> prefillQueue = new ArrayDeque<>();
    private final Deque<Seq> handoff = new ArrayDeque<>();
    private final Set<String> finished = Collections.newSetFromMap(new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> e) {
            return size() > 200_000;
        }
    });
    private long noPrefillWorkerSince = -1;
    private long noDecodeWorkerSince = -1;
    private long admittedTokens;
    private long arrivals;
    private long redispatches;

    public SchedulerCore(Limits limits) {
        this.limits = limits;
    }

    // ---- inputs ----

    /** A prepared request; a request id seen before (in flight or finished) is ignored: answered once. */
    public List<Action> onRequest(String id, GenerationSpec spec, Integer replyPartition, long now) {
        List<Action> out = new ArrayList<>();
        if (requests.containsKey(id) || finished.contains(id)) {
            return out;
        }
        if (waiting.size() >= limits.maxWaiting()) {
            fail(id, replyPartition, new ErrorInfo(429, "The server is overloaded: " + waiting.size() + " requests are waiting."
                    + " Retry later.", "rate_limit_exceeded", null, "queue_full"), out);
            return out;
        }
        Request r = new Request(id, spec, replyPartition, now, arrivals++);
        requests.put(id, r);
        waiting.add(r);
        dispatch(now, out);
        return out;
    }

    /** Remembers a request answered without the scheduler (rejected before admission) so that a redelivery is ignored. */
    public void markFinished(String id) {
        finished.add(id);
    }

    public boolean known(String id) {
        return requests.containsKey(id) || finished.contains(id);
    }

    public List<Action> onControl(ControlMessage m, long now) {
        List<Action> out = new ArrayList<>();
        switch (m.type()) {
            case ControlMessage.HEARTBEAT -> heartbeat(m, now, out);
            case ControlMessage.PREFILL_DONE -> prefillDone(m);
            case ControlMessage.SEQUENCE_DONE -> sequenceDone(m.sequenceId(), out);
            case ControlMessage.SEQUENCE_FAILED -> sequenceFailed(m, out);
            case ControlMessage.CANCEL -> cancel(m.requestId(), out, false);
            default -> {
            }
        }
        dispatch(now, out);
        return out;
    }

    /** Periodic: dead workers, deadlines, dispatch of anything that was waiting for capacity. */
    public List<Action> tick(long now) {
        List<Action> out = new ArrayList<>();
        for (Worker w : List.copyOf(workers.values())) {
            if (now - w.lastSeen > limits.workerTimeoutMillis()) {
                workerDied(w, out);
            }
        }
        if (limits.requestTimeoutMillis() > 0) {
            for (Request r : List.copyOf(requests.values())) {
                long deadline = r.spec.deadlineMillis() > 0 ? r.spec.deadlineMillis() : r.arrival + limits.requestTimeoutMillis();
                if (now > deadline) {
                    fail(r.id, r.reply, new ErrorInfo(504, "The request timed out after " + (now - r.arrival) + " ms.",
                            "timeout", null, "timeout"), out);
                    cancel(r.id, out, true);
                }
            }
        }
        failStranded(now, out);
        dispatch(now, out);
        return out;
    }

    /** Fails with 503 what waits for a pool that has had no live worker for the grace period. */
    private void failStranded(long now, List<Action> out) {
        noPrefillWorkerSince = hasWorker("prefill") ? -1 : noPrefillWorkerSince < 0 ? now : noPrefillWorkerSince;
        noDecodeWorkerSince = hasWorker("decode") ? -1 : noDecodeWorkerSince < 0 ? now : noDecodeWorkerSince;
        boolean noPrefill = noPrefillWorkerSince >= 0 && now - noPrefillWorkerSince >= limits.noWorkerGraceMillis();
        boolean noDecode = noDecodeWorkerSince >= 0 && now - noDecodeWorkerSince >= limits.noWorkerGraceMillis();
        if (!noPrefill && !noDecode) {
            return;
        }
        Set<Request> stranded = new LinkedHashSet<>();
        if (noPrefill) {
            stranded.addAll(waiting);
            prefillQueue.forEach(s -> stranded.add(s.req));
        }
        if (noDecode) {
            handoff.forEach(s -> stranded.add(s.req));
        }
        for (Request r : stranded) {
            String pool = noPrefill ? "prefill" : "decode";
            fail(r.id, r.reply, ErrorInfo.unavailable("No " + pool + " worker is alive to serve the request."), out);
            cancel(r.id, out, true);
        }
    }

    // ---- state changes ----

    private void heartbeat(ControlMessage m, long now, List<Action> out) {
        if ("scheduler".equals(m.role()) || m.workerId() == null) {
            return;
        }
        Worker known = workers.get(m.workerId());
        if (known != null && m.instance() != null && known.instance != null && !m.instance().equals(known.instance)) {
            workerDied(known, out);                     // restarted under the same id: what the old process held is gone
        }
        Worker w = workers.computeIfAbsent(m.workerId(), Worker::new);
        if (m.instance() != null) {
            w.instance = m.instance();
        }
        w.role = m.role();
        w.capacity = m.capacity() == null ? 1 : m.capacity();
        w.lastSeen = now;
    }

    private void prefillDone(ControlMessage m) {
        Seq s = sequences.get(m.sequenceId());
        if (s == null || s.phase != Phase.PREFILLING) {
            return;
        }
        release(s);
        s.phase = Phase.HANDOFF;
        s.stateKey = m.stateKey();
        s.generated = m.generated();
        handoff.add(s);
    }

    private void sequenceDone(String sequenceId, List<Action> out) {
        Seq s = sequences.remove(sequenceId);
        if (s == null) {
            return;
        }
        release(s);
        s.phase = Phase.DONE;
        prefillQueue.remove(s);
        handoff.remove(s);
        if (--s.req.remaining == 0) {
            forget(s.req);
            finished.add(s.req.id);
            out.add(new Finished(s.req.id));
        }
    }

    private void sequenceFailed(ControlMessage m, List<Action> out) {
        Seq s = sequences.get(m.sequenceId());
        if (s == null) {
            return;
        }
        boolean stateLost = m.error() != null && "state_unavailable".equals(m.error().code());
        if (stateLost && s.attempt < 2) {
            release(s);
            s.attempt++;
            s.phase = Phase.WAITING;
            s.stateKey = null;
            prefillQueue.addFirst(s);                     // recompute the prompt; the same seed resends the same tokens
            redispatches++;
            return;
        }
        Request r = s.req;
        fail(r.id, r.reply, m.error() != null ? m.error() : ErrorInfo.server("a worker failed the request"), out);
        cancel(r.id, out, true);
    }

    private void workerDied(Worker w, List<Action> out) {
        workers.remove(w.id);
        for (String id : List.copyOf(w.assigned)) {
            Seq s = sequences.get(id);
            if (s == null) {
                continue;
            }
            s.worker = null;
            s.attempt++;
            redispatches++;
            if (s.phase == Phase.PREFILLING) {
                s.phase = Phase.WAITING;
                prefillQueue.addFirst(s);
            } else if (s.phase == Phase.DECODING) {
                s.phase = Phase.HANDOFF;
                handoff.addFirst(s);
            }
        }
        w.assigned.clear();
    }

    private void cancel(String requestId, List<Action> out, boolean broadcast) {
        Request r = requests.get(requestId);
        if (r == null) {
            return;
        }
        forget(r);
        waiting.remove(r);
        for (int c = 0; c < r.spec.n(); c++) {
            Seq s = sequences.remove(r.spec.sequenceId(r.id, c));
            if (s != null) {
                release(s);
                prefillQueue.remove(s);
                handoff.remove(s);
            }
        }
        finished.add(requestId);
        if (broadcast) {
            out.add(new Broadcast(ControlMessage.cancel(requestId)));
        }
        out.add(new Finished(requestId));
    }

    private void fail(String id, Integer reply, ErrorInfo error, List<Action> out) {
        out.add(new SendEvent(id, reply, new TokenEvent(Codec.VERSION, id, 0, 0, null, null, null, null, null, null, error,
                System.nanoTime())));
        if (!requests.containsKey(id)) {
            finished.add(id);
            out.add(new Finished(id));
        }
    }

    private void release(Seq s) {
        if (s.worker != null) {
            Worker w = workers.get(s.worker);
            if (w != null) {
                w.assigned.remove(s.id);
            }
            s.worker = null;
        }
    }

    // ---- dispatch ----

    private void dispatch(long now, List<Action> out) {
        for (var it = handoff.iterator(); it.hasNext(); ) {          // finished prefills first: they hold kv-store space
            Seq s = it.next();
            Worker w = pick(false);
            if (w == null) {
                break;
            }
            it.remove();
            assign(s, w, Phase.DECODING);
            out.add(new SendTask(w.id, new WorkerTask(Codec.VERSION, WorkerTask.DECODE, s.req.id, s.choice, s.id, s.req.spec,
                    s.req.reply, s.stateKey, s.generated, s.attempt)));
        }
        while (!waiting.isEmpty() && fits(waiting.peek())) {
            Request r = waiting.poll();
            r.admitted = true;
            admittedTokens += tokenCost(r);
            out.add(new Admitted(r.id, now - r.arrival));
            for (int c = 0; c < r.spec.n(); c++) {
                Seq s = new Seq(r.spec.sequenceId(r.id, c), r, c);
                sequences.put(s.id, s);
                prefillQueue.add(s);
            }
        }
        for (var it = prefillQueue.iterator(); it.hasNext(); ) {
            Seq s = it.next();
            Worker w = pick(true);
            if (w == null) {
                break;
            }
            it.remove();
            assign(s, w, Phase.PREFILLING);
            out.add(new SendTask(w.id, new WorkerTask(Codec.VERSION, WorkerTask.PREFILL, s.req.id, s.choice, s.id, s.req.spec,
                    s.req.reply, null, null, s.attempt)));
        }
    }

    /** Admission: the sequence limit and the token budget (an oversized request is admitted when nothing else runs). */
    private boolean fits(Request next) {
        if (runningSequences() + next.spec.n() > limits.maxRunning()) {
            return false;
        }
        long used = runningTokens();
        return limits.maxRunningTokens() <= 0 || used == 0 || used + tokenCost(next) <= limits.maxRunningTokens();
    }

    private static long tokenCost(Request r) {
        return (long) r.spec.n() * (r.spec.promptTokenIds().length + r.spec.maxTokens());
    }

    /** The token budget in use: admitted requests' prompt plus max_tokens over their choices. */
    public long runningTokens() {
        return admittedTokens;
    }

    /** Drops a request from the table, returning its share of the token budget if it was admitted. */
    private void forget(Request r) {
        requests.remove(r.id);
        if (r.admitted) {
            admittedTokens -= tokenCost(r);
        }
    }

    private void assign(Seq s, Worker w, Phase phase) {
        s.worker = w.id;
        s.phase = phase;
        w.assigned.add(s.id);
    }

    /** The alive worker of the role with the most free capacity, or null. */
    private Worker pick(boolean prefill) {
        Worker best = null;
        for (Worker w : workers.values()) {
            if ((prefill ? w.prefills() : w.decodes()) && w.free() > 0 && (best == null || w.free() > best.free())) {
                best = w;
            }
        }
        return best;
    }

    // ---- gauges ----

    public int waitingRequests() {
        return waiting.size();
    }

    /** Sequences admitted and not finished (prefilling, handed off, decoding, or queued for a worker). */
    public int runningSequences() {
        return sequences.size();
    }

    public int runningRequests() {
        return requests.size() - waiting.size();
    }

    public int aliveWorkers() {
        return workers.size();
    }

    public boolean hasWorker(String role) {
        return workers.values().stream().anyMatch(w -> role.equals("prefill") ? w.prefills() : w.decodes());
    }

    /** Fraction of worker sequence slots in use (the vllm:kv_cache_usage_perc gauge: state slots are our cache). */
    public double slotUsage() {
        int cap = 0;
        int used = 0;
        for (Worker w : workers.values()) {
            cap += w.capacity;
            used += w.assigned.size();
        }
        return cap == 0 ? 0 : (double) used / cap;
    }

    public long redispatches() {
        return redispatches;
    }
}
