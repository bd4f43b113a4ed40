package dev.kimiserve.runtime.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.protocol.ControlMessage;
import dev.kimiserve.protocol.ErrorInfo;
import dev.kimiserve.protocol.GenerationSpec;
import dev.kimiserve.protocol.Sampling;
import dev.kimiserve.protocol.WorkerTask;
import dev.kimiserve.runtime.scheduler.SchedulerCore.Action;
import dev.kimiserve.runtime.scheduler.SchedulerCore.Finished;
import dev.kimiserve.runtime.scheduler.SchedulerCore.SendEvent;
import dev.kimiserve.runtime.scheduler.SchedulerCore.SendTask;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The scheduler's decisions, message by message, without Kafka. */
class SchedulerCoreTest {
    static final long T0 = 1_000_000;

    static GenerationSpec spec(int promptLength, int maxTokens, int n, int priority) {
        return new GenerationSpec("completion", "m", 0, new int[promptLength], n, maxTokens,
                new Sampling(0, 1, 0, 0, 1, 0, 0, 7), List.of(), List.of(), false, 0, false, false, false, false, false, 0,
                priority, null);
    }

    static ControlMessage heartbeat(String worker, String instance, String role, int capacity) {
        return ControlMessage.heartbeat(worker, instance, role, capacity, 0, List.of());
    }

    static List<SendTask> tasks(List<Action> actions) {
        return actions.stream().filter(a -> a instanceof SendTask).map(a -> (SendTask) a).toList();
    }

    static List<SendEvent> errors(List<Action> actions) {
        return actions.stream().filter(a -> a instanceof SendEvent).map(a -> (SendEvent) a).toList();
    }

    static SchedulerCore withWorkers(SchedulerCore.Limits limits) {
        SchedulerCore core = new SchedulerCore(limits);
        core.onControl(heartbeat("p1", "a", "prefill", 4), T0);
        core.onControl(heartbeat("d1", "b", "decode", 4), T0);
        return core;
    }

    static final SchedulerCore.Limits ROOMY = new SchedulerCore.Limits(8, 8, 0, 3000, 60_000, 10_000);

    @Test
    void prefillGoesToThePrefillPoolThenTheSequenceIsHandedToTheDecodePool() {
        SchedulerCore core = withWorkers(ROOMY);
        List<Action> first = core.onRequest("r1", spec(5, 10, 1, 0), 3, T0);
        assertTrue(first.contains(new SchedulerCore.Admitted("r1", 0)), "admitted at once: no queue time");
        List<SendTask> sent = tasks(first);
        assertEquals(1, sent.size());
        assertEquals("p1", sent.get(0).workerId());
        assertEquals(WorkerTask.PREFILL, sent.get(0).task().type());
        assertEquals(3, sent.get(0).task().replyPartition());

        List<SendTask> handed = tasks(core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{42}), T0 + 10));
        assertEquals(1, handed.size());
        assertEquals("d1", handed.get(0).workerId());
        assertEquals(WorkerTask.DECODE, handed.get(0).task().type());
        assertEquals("seq/r1/0", handed.get(0).task().stateKey());

        List<Action> done = core.onControl(ControlMessage.sequenceDone("r1", "r1/0", "d1", "length"), T0 + 20);
        assertTrue(done.contains(new Finished("r1")));
        assertEquals(0, core.runningSequences());
    }

    @Test
    void aRedeliveredRequestIdIsIgnored() {
        SchedulerCore core = withWorkers(ROOMY);
        assertEquals(1, tasks(core.onRequest("r1", spec(5, 10, 1, 0), 3, T0)).size());
        assertEquals(List.of(), core.onRequest("r1", spec(5, 10, 1, 0), 3, T0 + 1));
        core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{1}), T0 + 2);
        core.onControl(ControlMessage.sequenceDone("r1", "r1/0", "d1", "stop"), T0 + 3);
        assertEquals(List.of(), core.onRequest("r1", spec(5, 10, 1, 0), 3, T0 + 4), "answered once, even after it finished");
    }

    @Test
    void aFullQueueIsRefusedWith429AndHigherPriorityGoesFirst() {
        SchedulerCore core = withWorkers(new SchedulerCore.Limits(2, 1, 0, 3000, 60_000, 10_000));
        core.onRequest("running", spec(5, 10, 1, 0), 1, T0);
        core.onRequest("late", spec(5, 10, 1, 5), 1, T0 + 1);
        core.onRequest("urgent", spec(5, 10, 1, -1), 1, T0 + 2);
        List<SendEvent> refused = errors(core.onRequest("overflow", spec(5, 10, 1, 0), 1, T0 + 3));
        assertEquals(1, refused.size());
        assertEquals(429, refused.get(0).event().error().status());
        assertEquals(2, core.waitingRequests());

        core.onControl(ControlMessage.prefillDone("running", "running/0", "p1", "k", new int[]{1}), T0 + 4);
        List<Action> after = core.onControl(ControlMessage.sequenceDone("running", "running/0", "d1", "stop"), T0 + 5);
        assertEquals("urgent", tasks(after).get(0).task().requestId(), "lower priority value is served first, as in vLLM");
        assertTrue(after.contains(new SchedulerCore.Admitted("urgent", 3)), "queued from T0+2 to T0+5: " + after);
    }

    @Test
    void theTokenBudgetHoldsRequestsBackButNeverStarvesABigOne() {
        SchedulerCore core = withWorkers(new SchedulerCore.Limits(8, 8, 100, 3000, 60_000, 10_000));
        assertEquals(1, tasks(core.onRequest("a", spec(30, 30, 1, 0), 1, T0)).size());        // 60 of 100
        assertEquals(0, tasks(core.onRequest("b", spec(30, 30, 1, 0), 1, T0 + 1)).size());    // 120 > 100: waits
        assertEquals(60, core.runningTokens());
        core.onControl(ControlMessage.prefillDone("a", "a/0", "p1", "k", new int[]{1}), T0 + 2);
        List<SendTask> next = tasks(core.onControl(ControlMessage.sequenceDone("a", "a/0", "d1", "stop"), T0 + 3));
        assertEquals("b", next.get(0).task().requestId());
        core.onControl(ControlMessage.prefillDone("b", "b/0", "p1", "k", new int[]{1}), T0 + 4);
        core.onControl(ControlMessage.sequenceDone("b", "b/0", "d1", "stop"), T0 + 5);
        assertEquals(1, tasks(core.onRequest("huge", spec(500, 500, 1, 0), 1, T0 + 6)).size(), "alone it may exceed the budget");
    }

    @Test
    void aSilentWorkersSequencesGoToAnotherWorkerWithTheNextAttempt() {
        SchedulerCore core = withWorkers(ROOMY);
        core.onControl(heartbeat("d2", "c", "decode", 4), T0);
        core.onRequest("r1", spec(5, 10, 1, 0), 1, T0);
        String first = tasks(core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{9}), T0 + 1))
                .get(0).workerId();
        String other = first.equals("d1") ? "d2" : "d1";
        core.onControl(heartbeat("p1", "a", "prefill", 4), T0 + 2500);
        core.onControl(heartbeat(other, other.equals("d1") ? "b" : "c", "decode", 4), T0 + 2500);
        List<SendTask> again = tasks(core.tick(T0 + 3500));
        assertEquals(1, again.size());
        assertEquals(other, again.get(0).workerId());
        assertEquals(1, again.get(0).task().attempt());
        assertEquals("seq/r1/0", again.get(0).task().stateKey(), "the prompt state stays in the kv-store");
    }

    @Test
    void aWorkerRestartedUnderTheSameIdLosesWhatItHeldAndGetsItBack() {
        SchedulerCore core = withWorkers(ROOMY);
        core.onRequest("r1", spec(5, 10, 1, 0), 1, T0);
        List<SendTask> again = tasks(core.onControl(heartbeat("p1", "a-restarted", "prefill", 4), T0 + 100));
        assertEquals(1, again.size(), "the new process gets the prefill again");
        assertEquals("p1", again.get(0).workerId());
        assertEquals(1, again.get(0).task().attempt());
    }

    @Test
    void aLostStateIsRecomputedOnceThenTheRequestFails() {
        SchedulerCore core = withWorkers(ROOMY);
        core.onRequest("r1", spec(5, 10, 1, 0), 1, T0);
        core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{9}), T0 + 1);
        ErrorInfo lost = new ErrorInfo(500, "gone", "server_error", null, "state_unavailable");
        List<SendTask> retry = tasks(core.onControl(ControlMessage.sequenceFailed("r1", "r1/0", "d1", lost), T0 + 2));
        assertEquals(WorkerTask.PREFILL, retry.get(0).task().type());
        core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{9}), T0 + 3);
        core.onControl(ControlMessage.sequenceFailed("r1", "r1/0", "d1", lost), T0 + 4);
        core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "seq/r1/0", new int[]{9}), T0 + 5);
        List<Action> end = core.onControl(ControlMessage.sequenceFailed("r1", "r1/0", "d1", lost), T0 + 6);
        assertEquals(500, errors(end).get(0).event().error().status());
        assertTrue(end.contains(new Finished("r1")));
    }

    @Test
    void requestsForAnEmptyPoolFailWith503AfterTheGracePeriod() {
        SchedulerCore core = withWorkers(ROOMY);
        core.onRequest("r1", spec(5, 10, 1, 0), 1, T0);
        core.onControl(ControlMessage.prefillDone("r1", "r1/0", "p1", "k", new int[]{1}), T0 + 1);
        core.onControl(heartbeat("p1", "a", "prefill", 4), T0 + 2900);
        assertEquals(List.of(), errors(core.tick(T0 + 3100)), "d1 is declared dead; a replacement may still come");
        assertEquals(List.of(), errors(core.tick(T0 + 3100 + 9_000)));
        core.onControl(heartbeat("p1", "a", "prefill", 4), T0 + 3100 + 9_500);
        List<SendEvent> failed = errors(core.tick(T0 + 3100 + 10_000));
        assertEquals(1, failed.size());
        assertEquals(503, failed.get(0).event().error().status());
        assertEquals(0, core.runningSequences());
    }

    @Test
    void aRequestPastItsTimeoutFailsWith504AndIsCancelledEverywhere() {
        SchedulerCore core = withWorkers(new SchedulerCore.Limits(8, 8, 0, 1_000_000, 5000, 10_000));
        core.onRequest("r1", spec(5, 10, 1, 0), 1, T0);
        List<Action> late = core.tick(T0 + 6000);
        assertEquals(504, errors(late).get(0).event().error().status());
        assertTrue(late.stream().anyMatch(a -> a instanceof SchedulerCore.Broadcast b && b.message().type().equals(ControlMessage.CANCEL)));
        assertEquals(0, core.runningSequences());
    }
}
