package dev.kimiserve.cuda;

import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

/**
 * Which fp32 GEMV kernel each projection shape [N, K] runs below the tensor-core rows, from the setting
 * {@code kimi.cuda.gemv} / {@code KIMI_CUDA_GEMV}: a default, then optional per-shape choices, for example
 * {@code c1w4,2304x4096:c2w4,4096x128:c2w1}. A choice is a gemv.cu tiling or {@code warp} (engine.cu's kernel). It
 * depends on the shape only, never on the rows, so a row's result does not depend on the batch.
 *
 * @param fallback the tiling of every other shape; null: the warp kernel
 * @param byShape  per-shape choices keyed by {@link #key}; a null value: the warp kernel
 */
record GemvTilings(GemvKernel.Variant fallback, Map<Long, GemvKernel.Variant> byShape) {
    /** The setting's name, for messages. */
    static final String SETTING = "kimi.cuda.gemv";

    /** The tiling of a projection with {@code n} outputs and {@code k} inputs; null: the warp kernel. */
    GemvKernel.Variant forShape(int n, int k) {
        Long key = key(n, k);
        return byShape.containsKey(key) ? byShape.get(key) : fallback;
    }

    /** From the system property or the environment; {@code defaultTiling} where neither is set. */
    static GemvTilings fromEnvironment(String defaultTiling) {
        String setting = System.getProperty(SETTING, System.getenv("KIMI_CUDA_GEMV"));
        return parse(setting == null || setting.isBlank() ? defaultTiling : setting);
    }

    /** Parses {@code DEFAULT[,NxK:CHOICE...]}; a bad entry throws naming the setting and the entry. */
    static GemvTilings parse(String setting) {
        String[] parts = setting.trim().split("\\s*,\\s*");
        GemvKernel.Variant fallback = choice(parts[0], parts[0]);
        Map<Long, GemvKernel.Variant> byShape = new HashMap<>();
        for (int i = 1; i < parts.length; i++) {
            String entry = parts[i];
            String[] shapeAndChoice = entry.split(":");
            String[] nk = shapeAndChoice[0].split("x");
            if (shapeAndChoice.length != 2 || nk.length != 2) {
                throw new IllegalArgumentException(SETTING + ": '" + entry + "' is not NxK:TILING (e.g. 2304x4096:c2w4)");
            }
            try {
                byShape.put(key(Integer.parseInt(nk[0].trim()), Integer.parseInt(nk[1].trim())), choice(shapeAndChoice[1], entry));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(SETTING + ": '" + entry + "' has a shape that is not two integers NxK");
            }
        }
        return new GemvTilings(fallback, Collections.unmodifiableMap(byShape));     // null values (warp) allowed
    }

    private static GemvKernel.Variant choice(String name, String entry) {
        String n = name.trim();
        if (n.equals("warp")) {
            return null;
        }
        GemvKernel.Variant v;
        try {
            v = GemvKernel.variant(n);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(SETTING + ": '" + entry + "': " + e.getMessage() + " or warp");
        }
        if (v.tensorCores()) {
            throw new IllegalArgumentException(SETTING + ": '" + entry + "': tc is the tensor-core kernel, chosen from kimi.cuda.tc-from-rows rows");
        }
        return v;
    }

    private static long key(int n, int k) {
        return ((long) n << 32) | (k & 0xffffffffL);
    }
}
