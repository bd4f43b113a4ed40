package dev.kimiserve.cuda;

import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.state.KdaState;
import dev.kimiserve.core.state.MlaCache;
import dev.kimiserve.core.state.SequenceState;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Sequence state in device memory, allocated up front: per KDA layer a pool of recurrent states [slots][H][K][V] and
 * conv windows [slots][3C][W]; per MLA layer a pool of latent pages [pages][64][L+P] (fp32), a sequence holding the
 * same page ids in every MLA layer. A {@link SequenceState} gets a slot when an engine call first uses it; while the
 * device copy is the newest one the state is marked {@link SequenceState#residentOn resident} here, and reading it on
 * the host pulls it back. States that are released, garbage collected, or evicted to make room (pulled to the host
 * first) give their slot and pages back.
 */
final class DeviceStates implements SequenceState.Residence, AutoCloseable {
    /** One sequence's device memory; weakly refers to its state so that a forgotten state frees its slot. */
    private static final class Entry extends WeakReference<SequenceState> {
        final int slot;
        final List<Integer> pages = new ArrayList<>();
        long lastUse;
        boolean freed;

        Entry(SequenceState state, int slot, ReferenceQueue<SequenceState> queue) {
            super(state, queue);
            this.slot = slot;
        }
    }

    private final CudaDevice device;
    private final KimiLinearConfig cfg;
    private final int slots;
    private final int pages;
    /** Per layer: the KDA recurrent pool and conv pool, or the MLA page pool (null where the layer is the other kind). */
    final DeviceBuffer[] recurrent;
    final DeviceBuffer[] conv;
    final DeviceBuffer[] cache;
    private final WeakHashMap<SequenceState, Entry> entries = new WeakHashMap<>();
    private final ReferenceQueue<SequenceState> forgotten = new ReferenceQueue<>();
    /**
     * Every entry holding memory. A collected state's entry drops out of {@code entries} when the GC clears it but
     * reaches {@code forgotten} only later (the reference handler enqueues it): this set still finds it in between.
     */
    private final Set<Entry> holding = Collections.newSetFromMap(new IdentityHashMap<>());
    private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
    private final ArrayDeque<Integer> freePages = new ArrayDeque<>();
    private long clock;

    DeviceStates(CudaDevice device, KimiLinearConfig cfg, int slots, int pages) {
        this.device = device;
        this.cfg = cfg;
        this.slots = slots;
        this.pages = pages;
        int n = cfg.numLayers();
        recurrent = new DeviceBuffer[n];
        conv = new DeviceBuffer[n];
        cache = new DeviceBuffer[n];
        try {
            for (int l = 0; l < n; l++) {
                if (cfg.layerKind(l) == LayerKind.KDA) {
                    int h = cfg.kda().numHeads();
                    int k = cfg.kda().headDim();
                    recurrent[l] = DeviceBuffer.allocate(device, 4L * slots * h * k * k);
                    recurrent[l].fill(0f);
                    conv[l] = DeviceBuffer.allocate(device, 4L * slots * convFloats());
                    conv[l].fill(0f);
                } else {
                    cache[l] = DeviceBuffer.allocate(device, 4L * pages * MlaCache.PAGE_TOKENS * cfg.mla().latentSize());
                    cache[l].fill(Float.NaN);                          // poisoned: reading a position never appended shows NaN
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        for (int s = 0; s < slots; s++) {
            freeSlots.add(s);
        }
        for (int p = 0; p < pages; p++) {
            freePages.add(p);
        }
    }

    int slots() {
        return slots;
    }

    private int convFloats() {
        return 3 * cfg.kda().projectionSize() * (cfg.kda().convKernel() - 1);
    }

    private int recurrentFloats() {
        return cfg.kda().numHeads() * cfg.kda().headDim() * cfg.kda().headDim();
    }

    private int pageFloats() {
        return MlaCache.PAGE_TOKENS * cfg.mla().latentSize();
    }

    /**
     * Makes every state of a call resident with room for {@code newTokens[i]} more tokens: slots for new ones
     * (evicting the least recently used others when full), host copies uploaded where the host is newer.
     *
     * @return each state's slot
     */
    int[] prepare(SequenceState[] states, int[] newTokens) {
        reclaimForgotten();
        Set<SequenceState> batch = Collections.newSetFromMap(new IdentityHashMap<>());
        Collections.addAll(batch, states);
        int[] slotOf = new int[states.length];
        clock++;
        for (int i = 0; i < states.length; i++) {
            SequenceState s = states[i];
            Entry e = entries.get(s);
            if (e == null) {
                e = new Entry(s, takeSlot(batch), forgotten);
                entries.put(s, e);
                holding.add(e);
            }
            e.lastUse = clock;
            if (s.residence() != this) {
                upload(s, e, batch);
            }
            int need = pagesFor(s.position() + newTokens[i]);
            while (e.pages.size() < need) {
                e.pages.add(takePage(batch, s.position() + newTokens[i]));
            }
            slotOf[i] = e.slot;
        }
        return slotOf;
    }

    /** Page ids of a prepared state, in token order. */
    List<Integer> pagesOf(SequenceState s) {
        return entries.get(s).pages;
    }

    private int pagesFor(long tokens) {
        return cfg.mla() == null ? 0 : (int) ((tokens + MlaCache.PAGE_TOKENS - 1) / MlaCache.PAGE_TOKENS);
    }

    private int takeSlot(Set<SequenceState> batch) {
        while (freeSlots.isEmpty()) {
            if (!evictOne(batch)) {
                throw new IllegalStateException("all " + slots + " device state slots are in this one call; raise kimi.cuda.max-sequences");
            }
        }
        return freeSlots.poll();
    }

    private int takePage(Set<SequenceState> batch, long tokens) {
        while (freePages.isEmpty()) {
            if (!evictOne(batch)) {
                throw new IllegalStateException("the MLA cache pool holds " + (long) pages * MlaCache.PAGE_TOKENS + " tokens, this call needs more ("
                        + tokens + " for one sequence); raise kimi.cuda.cache-tokens");
            }
        }
        return freePages.poll();
    }

    /**
     * Frees a collected state's memory if there is one, else pulls the least recently used state outside the batch to
     * the host and frees its memory; false if there is neither.
     */
    private boolean evictOne(Set<SequenceState> batch) {
        for (Entry e : holding) {
            if (e.refersTo(null)) {                           // collected, not yet enqueued
                free(e);
                return true;
            }
        }
        Entry oldest = null;
        SequenceState victim = null;
        for (var it : entries.entrySet()) {
            if (!batch.contains(it.getKey()) && (oldest == null || it.getValue().lastUse < oldest.lastUse)) {
                oldest = it.getValue();
                victim = it.getKey();
            }
        }
        if (victim == null) {
            return false;
        }
        if (victim.residence() == this) {
            victim.residentOn(null);
            pull(victim);
        }
        free(entries.remove(victim));
        return true;
    }

    /** Marks released states whose newest copy was dropped: reading them fails instead of returning stale values. */
    private static final SequenceState.Residence RELEASED = s -> {
        throw new IllegalStateException("this sequence state was released by the cuda engine while its newest copy was on the device");
    };

    /** Marks states whose only current copy a failed forward pass may have half-written: reading them fails. */
    private static final SequenceState.Residence LOST = s -> {
        throw new IllegalStateException("this sequence state was lost: a cuda forward pass failed while its newest copy was on the device");
    };

    /**
     * After a failed forward pass: states resident here may be half-updated, so they are marked lost and freed; states
     * whose host copy was current stay usable (the device copy is uploaded again before their next use).
     */
    void failed(SequenceState[] batch) {
        for (SequenceState s : batch) {
            if (s.residence() == this) {
                s.residentOn(LOST);
                free(entries.remove(s));
            }
        }
    }

    /** Frees a finished sequence's memory without copying it back (see Engine#release). */
    void release(SequenceState s) {
        if (entries.get(s) != null) {
            if (s.residence() == this) {
                s.residentOn(RELEASED);
            }
            free(entries.remove(s));
        }
    }

    private void reclaimForgotten() {
        for (var r = forgotten.poll(); r != null; r = forgotten.poll()) {
            free((Entry) r);
        }
    }

    private void free(Entry e) {
        if (e != null && !e.freed) {
            e.freed = true;
            holding.remove(e);
            freeSlots.add(e.slot);
            freePages.addAll(e.pages);
            e.pages.clear();
        }
    }

    /** Host arrays -> this state's slot and pages (the host copy is the newest). */
    private void upload(SequenceState s, Entry e, Set<SequenceState> batch) {
        for (int l = 0; l < cfg.numLayers(); l++) {
            if (recurrent[l] != null && s.position() == 0) {               // a new sequence: zeros, no copy
                recurrent[l].slice(4L * e.slot * recurrentFloats(), 4L * recurrentFloats()).fill(0f);
                conv[l].slice(4L * e.slot * convFloats(), 4L * convFloats()).fill(0f);
            } else if (recurrent[l] != null) {
                KdaState k = s.kda(l);
                recurrent[l].slice(4L * e.slot * recurrentFloats(), 4L * recurrentFloats()).upload(k.recurrent);
                conv[l].slice(4L * e.slot * convFloats(), 4L * convFloats()).upload(concat(k.convQ, k.convK, k.convV));
            }
        }
        freePages.addAll(e.pages);
        e.pages.clear();
        int needed = pagesFor(s.position());
        for (int p = 0; p < needed; p++) {
            e.pages.add(takePage(batch, s.position()));
        }
        for (int l = 0; l < cfg.numLayers(); l++) {
            if (cache[l] != null) {
                MlaCache c = s.mla(l);
                if (c.length() != s.position()) {
                    throw new IllegalStateException("layer " + l + " caches " + c.length() + " tokens, the sequence is at " + s.position());
                }
                for (int p = 0; p < needed; p++) {
                    cache[l].slice(4L * e.pages.get(p) * pageFloats(), 4L * pageFloats()).upload(c.page(p * MlaCache.PAGE_TOKENS));
                }
            }
        }
    }

    private static float[] concat(float[] a, float[] b, float[] c) {
        float[] all = new float[a.length + b.length + c.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        System.arraycopy(c, 0, all, a.length + b.length, c.length);
        return all;
    }

    /** Device -> host arrays of a resident state (its mark already cleared by the caller). */
    @Override
    public void pull(SequenceState s) {
        Entry e = entries.get(s);
        if (e == null) {
            throw new IllegalStateException("a state marked resident on the device has no device slot");
        }
        device.makeCurrent();
        device.synchronize();
        float[] windows = cfg.kda() == null ? null : new float[convFloats()];
        float[] page = cfg.mla() == null ? null : new float[pageFloats()];
        for (int l = 0; l < cfg.numLayers(); l++) {
            if (recurrent[l] != null) {
                KdaState k = s.kda(l);
                recurrent[l].slice(4L * e.slot * recurrentFloats(), 4L * recurrentFloats()).download(k.recurrent);
                conv[l].slice(4L * e.slot * convFloats(), 4L * convFloats()).download(windows);
                int n = k.convQ.length;
                System.arraycopy(windows, 0, k.convQ, 0, n);
                System.arraycopy(windows, n, k.convK, 0, n);
                System.arraycopy(windows, 2 * n, k.convV, 0, n);
            } else {
                MlaCache c = s.mla(l);
                c.reset();
                int latent = cfg.mla().latentSize();
                for (int t = 0; t < s.position(); t++) {
                    if (t % MlaCache.PAGE_TOKENS == 0) {
                        cache[l].slice(4L * e.pages.get(t / MlaCache.PAGE_TOKENS) * pageFloats(), 4L * pageFloats()).download(page);
                    }
                    c.append(page, (t % MlaCache.PAGE_TOKENS) * latent);
                }
            }
        }
    }

    /** Pulls every resident state (before the device memory goes away). */
    private void pullAll() {
        Collection<SequenceState> all = new ArrayList<>(entries.keySet());
        for (SequenceState s : all) {
            if (s.residence() == this) {
                s.residentOn(null);
                pull(s);
            }
        }
    }

    @Override
    public void close() {
        try {
            pullAll();
        } finally {
            for (DeviceBuffer[] pool : List.of(recurrent, conv, cache)) {
                for (DeviceBuffer b : pool) {
                    if (b != null) {
                        b.close();
                    }
                }
            }
        }
    }
}
