package dev.kimiserve.cli;

import dev.kimiserve.core.cpu.KernelBench;
import dev.kimiserve.core.model.Backends;
import dev.kimiserve.cuda.CudaDevice;
import dev.kimiserve.cuda.CudaKernelBench;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kimi bench-kernels}: one JSON line per kernel and shape (median time, GB/s, GFLOP/s). */
@Command(name = "bench-kernels", mixinStandardHelpOptions = true, description = "Micro-benchmark the compute kernels.")
final class BenchKernelsCommand implements Callable<Integer> {
    @Option(names = "--backend", defaultValue = "cpu", paramLabel = "NAME", description = "cpu (default) or cuda.")
    String backend;

    @Option(names = "--threads", paramLabel = "T", description = "Compute threads (default: all cores).")
    Integer threads;

    @Option(names = "--repeat", defaultValue = "15", paramLabel = "R", description = "Timed runs per shape; the median is printed.")
    int repeat;

    @Option(names = "--device", defaultValue = "0", paramLabel = "N", description = "GPU ordinal for --backend cuda (default: ${DEFAULT-VALUE}).")
    int deviceOrdinal;

    @Option(names = "--variants", description = "cuda: also time every compiled tiling of the kernels that have several (kda_decode, gemv).")
    boolean variants;

    @Option(names = "--only", paramLabel = "FAMILY", split = ",",
            description = "cuda: only these kernel families (copy, logits, kda_decode, kda_prefill, mla_decode, matmul, gemv); default all.")
    java.util.List<String> only;

    @Override
    public Integer call() {
        if (backend.equals("cuda")) {
            try (CudaDevice device = CudaDevice.open(deviceOrdinal); CudaKernelBench bench = new CudaKernelBench(device, repeat, System.out::println)) {
                java.util.Set<String> families = only == null ? CudaKernelBench.FAMILIES : new java.util.LinkedHashSet<>(only);
                bench.run(families);
                if (variants && families.contains("kda_decode")) {
                    bench.kdaDecodeVariants();
                }
                if (variants && families.contains("gemv")) {
                    bench.gemvVariants();
                }
            }
            return 0;
        }
        if (!backend.equals("cpu")) {
            throw new IllegalArgumentException("unknown backend '" + backend + "' (cpu or cuda)");
        }
        KernelBench bench = new KernelBench(threads != null ? threads : Backends.defaultThreads(), repeat, System.out::println);
        try {
            bench.runAll();
        } finally {
            bench.close();
        }
        return 0;
    }
}
