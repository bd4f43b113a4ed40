package dev.kimiserve.core.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed pool of compute threads for data-parallel loops: the calling thread and {@code threads - 1} workers pull
 * chunks of an index range from a shared counter. Workers spin briefly between regions (a decode step runs hundreds
 * of short regions) and then park, so an idle engine costs no CPU. Threads are created once; a region allocates
 * nothing. One region runs at a time; a region started from inside a task runs inline.
 */
public final class CpuPool implements AutoCloseable {
    /** Work over indices [from, to). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to);
    }

    private static final long SPIN_NANOS = 50_000;
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final Thread[] workers;
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicInteger active = new AtomicInteger();
    private volatile long epoch;
    private volatile boolean closed;
    private volatile RangeTask task;
    private volatile int end;
    private volatile int grain;
    private volatile Throwable failure;

    public CpuPool(int threads) {
        if (threads <= 0) {
            throw new IllegalArgumentException("threads must be > 0, got " + threads);
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            Thread t = new Thread(this::workerLoop, "kimi-cpu-" + (i + 1));
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
            this.end = n;
            this.grain = g;
            this.failure = null;
            next.set(0);
            active.set(workers.length);
            epoch++;
            for (Thread w : workers) {
                LockSupport.unpark(w);
            }
            INSIDE.set(true);
            try {
                drain(task, n, g);
            } catch (Throwable t) {
                failure = t;
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

    private void drain(RangeTask t, int n, int g) {
        while (true) {
            int from = next.getAndAdd(g);
            if (from >= n) {
                return;
            }
            t.run(from, Math.min(n, from + g));
        }
    }

    private void workerLoop() {
        INSIDE.set(true);
        long seen = 0;
        while (!closed) {
            long spinStart = System.nanoTime();
            while (epoch == seen && !closed) {
                if (System.nanoTime() - spinStart < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(this, 1_000_000);
                }
            }
            if (closed) {
                return;
            }
            seen = epoch;
            try {
                drain(task, end, grain);
            } catch (Throwable t) {
                failure = t;
                next.set(Integer.MAX_VALUE / 2);
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
