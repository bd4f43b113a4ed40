package dev.kimiserve.core.model;

import java.util.concurrent.atomic.LongAdder;

/** Counters an engine keeps for benchmarks and metrics. */
public final class EngineCounters {
    /** Forward passes (one per prefill call or decode step). */
    public final LongAdder forwardPasses = new LongAdder();
    /** Sum over forward passes and MoE layers of the distinct routed experts used. */
    public final LongAdder distinctExpertLoads = new LongAdder();
    /** Tokens processed. */
    public final LongAdder tokens = new LongAdder();
}
