package dev.kimiserve.core.state;

import java.util.ArrayList;
import java.util.List;

/**
 * The latent cache of one MLA layer for one sequence: per token the {@code latentSize} values
 * [c (kv_lora_rank, after kv_a_layernorm) | k_pe (qk_rope_head_dim, never rotated)], fp32, in pages of
 * {@link #PAGE_TOKENS} tokens so that appending never copies what is already cached.
 */
public final class MlaCache implements LayerState {
    public static final int PAGE_TOKENS = 64;

    private final int latentSize;
    private final List<float[]> pages = new ArrayList<>();
    private int length;

    public MlaCache(int latentSize) {
        if (latentSize <= 0) {
            throw new IllegalArgumentException("latent size must be > 0");
        }
        this.latentSize = latentSize;
    }

    public int latentSize() {
        return latentSize;
    }

    /** Number of cached tokens. */
    public int length() {
        return length;
    }

    /** Appends one token's latent, read from {@code src[offset .. offset + latentSize)}. */
    public void append(float[] src, int offset) {
        int page = length / PAGE_TOKENS;
        if (page == pages.size()) {
            pages.add(new float[PAGE_TOKENS * latentSize]);
        }
        System.arraycopy(src, offset, pages.get(page), (length % PAGE_TOKENS) * latentSize, latentSize);
        length++;
    }

    /** The page holding token {@code t}; the token's values start at {@link #offsetInPage(int)}. */
    public float[] page(int t) {
        checkIndex(t);
        return pages.get(t / PAGE_TOKENS);
    }

    public int offsetInPage(int t) {
        return (t % PAGE_TOKENS) * latentSize;
    }

    /** Value {@code i} of token {@code t}'s latent. */
    public float get(int t, int i) {
        return page(t)[offsetInPage(t) + i];
    }

    /** Copies token {@code t}'s latent into {@code dst[offset ..]}. */
    public void read(int t, float[] dst, int offset) {
        System.arraycopy(page(t), offsetInPage(t), dst, offset, latentSize);
    }

    /** Drops tokens from {@code newLength} on (used to roll back speculative or cancelled appends). */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate " + length + " tokens to " + newLength);
        }
        length = newLength;
        int keepPages = (newLength + PAGE_TOKENS - 1) / PAGE_TOKENS;
        while (pages.size() > keepPages) {
            pages.removeLast();
        }
    }

    private void checkIndex(int t) {
        if (t < 0 || t >= length) {
            throw new IndexOutOfBoundsException("token " + t + " of a latent cache holding " + length);
        }
    }

    @Override
    public long byteSize() {
        return 4L * pages.size() * PAGE_TOKENS * latentSize;
    }

    @Override
    public void reset() {
        pages.clear();
        length = 0;
    }

    @Override
    public MlaCache copy() {
        MlaCache c = new MlaCache(latentSize);
        for (float[] p : pages) {
            c.pages.add(p.clone());
        }
        c.length = length;
        return c;
    }
}
