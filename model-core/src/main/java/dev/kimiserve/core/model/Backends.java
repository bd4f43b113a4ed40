package dev.kimiserve.core.model;

import dev.kimiserve.core.cpu.CpuEngine;
import dev.kimiserve.core.reference.ReferenceEngine;
import dev.kimiserve.core.weights.ModelWeights;
import java.lang.System.Logger.Level;
import java.util.List;

/**
 * Chooses the compute backend: {@code auto} tries cuda, then cpu; {@code reference} is for tests and debugging. The
 * choice is logged once with the reasons the others were refused. The system property {@code kimi.backend} or the
 * environment variable {@code KIMI_BACKEND} overrides {@code auto}.
 */
public final class Backends {
    public static final List<String> NAMES = List.of("auto", "cpu", "reference", "cuda");
    private static final System.Logger LOG = System.getLogger(Backends.class.getName());

    private Backends() {
    }

    public static Engine create(String requested, ModelWeights weights) {
        return create(requested, weights, defaultThreads());
    }

    /** Compute threads of the cpu backend: {@code kimi.cpu.threads} / {@code KIMI_CPU_THREADS}, else all cores. */
    public static int defaultThreads() {
        String t = System.getProperty("kimi.cpu.threads", System.getenv("KIMI_CPU_THREADS"));
        if (t != null && !t.isBlank()) {
            try {
                int n = Integer.parseInt(t.trim());
                if (n > 0) {
                    return n;
                }
            } catch (NumberFormatException ignored) {
                // fall through to the default
            }
            throw new IllegalArgumentException("kimi.cpu.threads / KIMI_CPU_THREADS must be a positive integer, got '" + t + "'");
        }
        return Runtime.getRuntime().availableProcessors();
    }

    public static Engine create(String requested, ModelWeights weights, int threads) {
        String name = requested == null || requested.isBlank() ? "auto" : requested.trim().toLowerCase(java.util.Locale.ROOT);
        if (name.equals("auto")) {
            String forced = System.getProperty("kimi.backend", System.getenv("KIMI_BACKEND"));
            if (forced != null && !forced.isBlank() && !forced.equalsIgnoreCase("auto")) {
                name = forced.trim().toLowerCase(java.util.Locale.ROOT);
            }
        }
        Engine engine = switch (name) {
            case "auto" -> {
                EngineProvider cuda = provider("cuda");
                String refused = cudaRefusal(cuda);
                if (refused == null) {
                    LOG.log(Level.INFO, "backend: cuda");
                    yield cuda.create(weights);
                }
                LOG.log(Level.INFO, "backend: cpu, " + threads + " threads, " + jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize()
                        + "-bit vectors (cuda refused: " + refused + ")");
                yield new CpuEngine(weights, threads, CpuEngine.DEFAULT_PREFILL_CHUNK);
            }
            case "cpu" -> new CpuEngine(weights, threads, CpuEngine.DEFAULT_PREFILL_CHUNK);
            case "reference" -> new ReferenceEngine(weights);
            case "cuda" -> {
                EngineProvider cuda = provider("cuda");
                String refused = cudaRefusal(cuda);
                if (refused != null) {
                    throw new IllegalArgumentException("backend 'cuda' is not available: " + refused);
                }
                yield cuda.create(weights);
            }
            default -> throw new IllegalArgumentException("unknown backend '" + requested + "' (choose one of " + NAMES + ")");
        };
        LOG.log(Level.DEBUG, "backend selected: " + engine.backend());
        return engine;
    }

    /** Why the cuda backend cannot run here (null: it can). */
    private static String cudaRefusal(EngineProvider cuda) {
        return cuda == null ? "no CUDA backend on the class path (module model-cuda)" : cuda.unavailableReason();
    }

    /** The packaged backend called {@code name} ({@link EngineProvider} through the ServiceLoader), or null. */
    public static EngineProvider provider(String name) {
        for (EngineProvider p : java.util.ServiceLoader.load(EngineProvider.class, Backends.class.getClassLoader())) {
            if (p.name().equals(name)) {
                return p;
            }
        }
        return null;
    }
}
