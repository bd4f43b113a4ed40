package dev.kimiserve.cli;

import dev.kimiserve.core.tokenizer.IntList;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kimi bench-tokenizer}: single-thread encode throughput on a text file, as one JSON line. */
@Command(name = "bench-tokenizer", mixinStandardHelpOptions = true, description = "Measure tokenizer encode throughput (single thread).")
final class BenchTokenizerCommand implements Callable<Integer> {
    @Option(names = "--tokenizer", required = true, paramLabel = "DIR", description = "Directory with tiktoken.model.")
    Path tokenizer;

    @Option(names = "--text", required = true, paramLabel = "FILE", description = "UTF-8 text to encode.")
    Path text;

    @Option(names = "--repeat", defaultValue = "7", paramLabel = "R", description = "Timed runs; the median is printed (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Override
    public Integer call() throws Exception {
        KimiTokenizer tok = KimiTokenizer.load(tokenizer);
        String s = Files.readString(text, StandardCharsets.UTF_8);
        long bytes = s.getBytes(StandardCharsets.UTF_8).length;
        IntList ids = new IntList(1 << 20);
        long warmStart = System.nanoTime();
        while (System.nanoTime() - warmStart < 3_000_000_000L) {
            ids.clear();
            tok.encode(s, true, ids);
        }
        double[] t = new double[repeat];
        for (int r = 0; r < repeat; r++) {
            ids.clear();
            long t0 = System.nanoTime();
            tok.encode(s, true, ids);
            t[r] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        double med = t[repeat / 2];
        System.out.printf(Locale.ROOT, "{\"engine\":\"kimi-serve KimiTokenizer (Java %s)\",\"bytes\":%d,\"tokens\":%d,\"median_s\":%.4f,\"mb_per_s\":%.3f}%n",
                Runtime.version(), bytes, ids.size(), med, bytes / med / 1e6);
        return 0;
    }
}
