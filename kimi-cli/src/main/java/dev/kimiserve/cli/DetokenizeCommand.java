package dev.kimiserve.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code kimi detokenize}: a JSON array of id arrays in, a JSON array of strings out. */
@Command(name = "detokenize", mixinStandardHelpOptions = true, description = "Decode a JSON array of id arrays to strings.")
final class DetokenizeCommand implements Callable<Integer> {
    @Option(names = "--tokenizer", required = true, paramLabel = "DIR", description = "Directory with tiktoken.model (a model directory).")
    Path tokenizer;

    @Option(names = "--in", required = true, paramLabel = "FILE", description = "JSON array of id arrays.")
    Path in;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output JSON array of strings.")
    Path out;

    @Override
    public Integer call() throws Exception {
        KimiTokenizer tok = KimiTokenizer.load(tokenizer);
        ObjectMapper json = new ObjectMapper();
        JsonNode arrays = json.readTree(in.toFile());
        if (arrays == null || !arrays.isArray()) {
            throw new IllegalArgumentException(in + ": expected a JSON array of id arrays");
        }
        List<String> result = new ArrayList<>();
        for (int i = 0; i < arrays.size(); i++) {
            JsonNode ids = arrays.get(i);
            if (!ids.isArray()) {
                throw new IllegalArgumentException(in + ": element " + i + " is not an array of ids");
            }
            int[] v = new int[ids.size()];
            for (int j = 0; j < v.length; j++) {
                if (!ids.get(j).canConvertToInt() || !ids.get(j).isIntegralNumber()) {
                    throw new IllegalArgumentException(in + ": element " + i + "[" + j + "] is not a token id");
                }
                v[j] = ids.get(j).asInt();
            }
            result.add(tok.decode(v));
        }
        Files.writeString(out, json.writeValueAsString(result));
        return 0;
    }
}
