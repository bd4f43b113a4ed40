package dev.kimiserve.cli;

import dev.kimiserve.core.cpu.MemoryBandwidth;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.EngineCounters;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.model.WeightTraffic;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.cuda.CudaEngine;
import dev.kimiserve.cuda.CudaKernelBench;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code kimi bench}: whole-model prefill and decode throughput. Prints one JSON line per measurement (the median of
 * {@code --repeat} runs): mode, batch, prompt_tokens, tokens_per_s, bytes_per_token (weight bytes a step reads per
 * token: always-active weights plus the routed experts actually selected), threads, backend. Decode is the steady
 * state: each run copies the prefilled states and takes one untimed step first (on cuda that step moves the copies to
 * the device and captures the step's graph), then times --decode-tokens steps.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Measure prefill and decode throughput.")
final class BenchCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--batch", defaultValue = "1", paramLabel = "N", description = "Sequences decoded together (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--prompt-tokens", defaultValue = "128", paramLabel = "P", description = "Prompt length (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--decode-tokens", defaultValue = "32", paramLabel = "D", description = "Decode steps timed (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--repeat", defaultValue = "3", paramLabel = "R", description = "Runs per measurement; the median is printed (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--mode", defaultValue = "both", paramLabel = "MODE", description = "prefill, decode or both (default: ${DEFAULT-VALUE}).")
    String mode;

    @Option(names = "--read-bandwidth", description = "Also measure the bandwidth ceiling (cpu: STREAM-like read in this JVM; cuda: the GPU's device-to-device copy) and report the roofline fraction.")
    boolean readBandwidth;

    private double decodeRate;
    private long decodeBytes;
    private String backendName;
    private double deviceBandwidth;

    @Override
    public Integer call() {
        if (batch <= 0 || promptTokens <= 0 || decodeTokens <= 0 || repeat <= 0) {
            throw new IllegalArgumentException("--batch, --prompt-tokens, --decode-tokens and --repeat must be > 0");
        }
        try (LoadedModel loaded = modelOptions.open(); Engine engine = modelOptions.engine(loaded)) {
            int vocab = loaded.config().vocabSize();
            int threads = modelOptions.threads();
            WeightTraffic traffic = new WeightTraffic(loaded.weights());
            SplittableRandom rnd = new SplittableRandom(1);
            int[][] prompts = new int[batch][promptTokens];
            for (int[] p : prompts) {
                for (int i = 0; i < p.length; i++) {
                    p[i] = rnd.nextInt(vocab);
                }
            }
            // warm-up: JIT compiles the hot paths
            SequenceState warm = engine.newState();
            engine.prefill(Arrays.copyOf(prompts[0], Math.min(promptTokens, 80)), warm, Engine.Logits.LAST);
            for (int i = 0; i < 3; i++) {
                engine.decode(1, warm);
            }
            SequenceState[] states = new SequenceState[batch];
            if (!mode.equals("decode")) {
                double[] rates = new double[repeat];
                long bytes = 0;
                for (int r = 0; r < repeat; r++) {
                    EngineCounters c = engine.counters();
                    long loads0 = c.distinctExpertLoads.sum();
                    long t0 = System.nanoTime();
                    for (int b = 0; b < batch; b++) {
                        states[b] = engine.newState();
                        engine.prefill(prompts[b], states[b], Engine.Logits.LAST);
                    }
                    long dt = System.nanoTime() - t0;
                    rates[r] = (double) batch * promptTokens / (dt / 1e9);
                    c = engine.counters();
                    bytes = traffic.stepBytes(promptTokens, (c.distinctExpertLoads.sum() - loads0) / batch) / promptTokens;
                }
                print("prefill", median(rates), bytes, threads, engine.backend(), 0);
            }
            if (!mode.equals("prefill")) {
                if (states[0] == null) {
                    for (int b = 0; b < batch; b++) {
                        states[b] = engine.newState();
                        engine.prefill(prompts[b], states[b], Engine.Logits.LAST);
                    }
                }
                int[] tokens = new int[batch];
                float[] logits = new float[batch * vocab];
                double[] rates = new double[repeat];
                long bytes = 0;
                for (int r = 0; r < repeat; r++) {
                    SequenceState[] run = new SequenceState[batch];
                    for (int b = 0; b < batch; b++) {
                        run[b] = states[b].copy();
                    }
                    for (int b = 0; b < batch; b++) {
                        tokens[b] = rnd.nextInt(vocab);
                    }
                    engine.decode(tokens, run, logits);    // untimed first step: moves the copies to the device, captures the step
                    EngineCounters c = engine.counters();
                    long loads0 = c.distinctExpertLoads.sum();
                    long t0 = System.nanoTime();
                    for (int step = 0; step < decodeTokens; step++) {
                        for (int b = 0; b < batch; b++) {
                            tokens[b] = rnd.nextInt(vocab);
                        }
                        engine.decode(tokens, run, logits);
                    }
                    long dt = System.nanoTime() - t0;
                    rates[r] = (double) batch * decodeTokens / (dt / 1e9);
                    c = engine.counters();
                    long loads = c.distinctExpertLoads.sum() - loads0;
                    bytes = (traffic.stepBytes(batch, 0) * decodeTokens + loads * traffic.expertBytes()) / ((long) batch * decodeTokens);
                }
                decodeRate = median(rates);
                decodeBytes = bytes;
            }
            backendName = engine.backend();
            if (readBandwidth && engine instanceof CudaEngine cuda) {
                // the GPU's ceiling: a device-to-device copy (bytes read plus written), as the kernel benchmarks report it
                try (CudaKernelBench probe = new CudaKernelBench(cuda.device(), 20, line -> { })) {
                    deviceBandwidth = probe.copyBytesPerSecond(1L << 30);
                }
            }
        }
        if (decodeRate > 0) {
            // the bandwidth probe runs last, with the engine's threads stopped and the JIT done with the engine
            double bandwidth = !readBandwidth ? 0 : deviceBandwidth > 0 ? deviceBandwidth
                    : MemoryBandwidth.measureReadBytesPerSecond(1L << 30, modelOptions.threads(), 10);
            if (readBandwidth) {
                System.out.printf(Locale.ROOT, "{\"mode\":\"read_bandwidth\",\"bytes_per_s\":%.4g,\"threads\":%d,\"probe\":\"%s\"}%n", bandwidth,
                        modelOptions.threads(), deviceBandwidth > 0 ? "cuda_copy_d2d" : "cpu_read");
            }
            print("decode", decodeRate, decodeBytes, modelOptions.threads(), backendName, bandwidth);
        }
        return 0;
    }

    private void print(String m, double tokensPerS, long bytesPerToken, int threads, String backend, double bandwidth) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "{\"mode\":\"%s\",\"batch\":%d,\"prompt_tokens\":%d,\"tokens_per_s\":%.2f,\"bytes_per_token\":%d,"
                + "\"threads\":%d,\"backend\":\"%s\"", m, batch, promptTokens, tokensPerS, bytesPerToken, threads, backend));
        if (m.equals("decode")) {
            sb.append(String.format(Locale.ROOT, ",\"decode_tokens\":%d,\"weight_bytes_per_s\":%.4g", decodeTokens, tokensPerS * bytesPerToken));
            if (bandwidth > 0) {
                sb.append(String.format(Locale.ROOT, ",\"read_bandwidth_bytes_per_s\":%.4g,\"bandwidth_fraction\":%.3f", bandwidth,
                        tokensPerS * bytesPerToken / bandwidth));
            }
        }
        System.out.println(sb.append('}'));
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
