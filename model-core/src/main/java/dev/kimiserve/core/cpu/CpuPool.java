package dev.kimiserve.core.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed pool of compute threads for data-parallel loops. The index range of a region is split into one contiguous
 * part per thread (the calling thread included), so that each thread streams through adjacent memory and the hardware
 * prefetchers keep up; a thread that finishes its part steals single indices from the end of the others' parts, so
 * uneven items still balance. Measured on the small preset, decode at batch 1: 112 tok/s with one shared counter,
 * 143 tok/s with contiguous parts. Workers spin briefly between regions (a decode step runs dozens of short regions)
 * and then park, so an idle engine costs no CPU. Threads are created once; a region allocates nothing. One region
 * runs at a time; a region started from inside a task runs inline.
 */
public final class CpuPool implements AutoCloseable {
    /** Work over indices [from, to). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to);
    }

    private static final long SPIN_NANOS = 2_000_000;
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final Thread[] workers;
    /** Per part: (next index << 32) | end index; the owner advances next, thieves lower end. */
    private final java.util.concurrent.atomic.AtomicLongArray parts;
    private final AtomicInteger active = new AtomicInteger();
    private volatile long epoch;
    private volatile boolean closed;
    private volatile RangeTask task;
    private volatile int grain;
    private volatile Throwable failure;
    /** Per worker: true while parked, so that a region start only pays for an unpark when one is needed. */
    private final java.util.concurrent.atomic.AtomicIntegerArray sleeping;

    public CpuPool(int threads) {
        if (threads <= 0) {
            throw new IllegalArgumentException("threads must be > 0, got " + threads);
        }
        this.threads = threads;
        this.parts = new java.util.concurrent.atomic.AtomicLongArray(threads);
        this.workers = new Thread[threads - 1];
        this.sleeping = new java.util.concurrent.atomic.AtomicIntegerArray(Math.max(1, threads - 1));
        for (int i = 0; i < workers.length; i++) {
            int index = i;
            Thread t = new Thread(() -> workerLoop(index), "kimi-cpu-" + (i + 1));
            t.setDaemon(true);
            workers[i] = t;
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over [0, n) in chunks of {@code grain} indices on all threads; returns when all are done. */
    public void forRange(int n, int grain, RangeTask task) {
        if (n <= 0) {
            return;
        }
        int g = Math.max(1, grain);
        if (workers.length == 0 || n <= g || INSIDE.get()) {
            task.run(0, n);
            return;
        }
        synchronized (this) {
            this.task = task;
            this.grain = g;
            this.failure = null;
            for (int p = 0; p < threads; p++) {
                long from = (long) n * p / threads;
                long to = (long) n * (p + 1) / threads;
                parts.set(p, from << 32 | to);
            }
            active.set(workers.length);
            epoch++;
            for (int i = 0; i < workers.length; i++) {
                if (sleeping.get(i) != 0) {
                    LockSupport.unpark(workers[i]);
                }
            }
            INSIDE.set(true);
            try {
                drain(task, 0, g);
            } catch (Throwable t) {
                failure = t;
                stopAll();
            } finally {
                INSIDE.set(false);
            }
            while (active.get() != 0) {
                Thread.onSpinWait();
            }
            this.task = null;
            Throwable f = failure;
            if (f != null) {
                if (f instanceof RuntimeException re) {
                    throw re;
                }
                if (f instanceof Error err) {
                    throw err;
                }
                throw new IllegalStateException(f);
            }
        }
    }

    /** Runs this thread's part in chunks of {@code g}, then steals single indices from the ends of other parts. */
    private void drain(RangeTask t, int part, int g) {
        while (true) {
            long v = parts.get(part);
            int from = (int) (v >>> 32);
            int to = (int) v;
            if (from >= to) {
                break;
            }
            int take = Math.min(g, to - from);
            if (parts.compareAndSet(part, v, (long) (from + take) << 32 | (to & 0xffffffffL))) {
                t.run(from, from + take);
            }
        }
        for (int k = 1; k < threads; k++) {
            int victim = (part + k) % threads;
            while (true) {
                long v = parts.get(victim);
                int from = (int) (v >>> 32);
                int to = (int) v;
                if (from >= to) {
                    break;
                }
                if (parts.compareAndSet(victim, v, (long) from << 32 | ((to - 1) & 0xffffffffL))) {
                    t.run(to - 1, to);
                }
            }
        }
    }

    private void stopAll() {
        for (int p = 0; p < threads; p++) {
            parts.set(p, 0L);
        }
    }

    private void workerLoop(int index) {
        INSIDE.set(true);
        long seen = 0;
        while (!closed) {
            long spinStart = System.nanoTime();
            while (epoch == seen && !closed) {
                if (System.nanoTime() - spinStart < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    sleeping.set(index, 1);
                    if (epoch == seen && !closed) {
                        LockSupport.parkNanos(this, 1_000_000);
                    }
                    sleeping.set(index, 0);
                }
            }
            if (closed) {
                return;
            }
            seen = epoch;
            try {
                drain(task, index + 1, grain);
            } catch (Throwable t) {
                failure = t;
                stopAll();
            } finally {
                active.decrementAndGet();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
