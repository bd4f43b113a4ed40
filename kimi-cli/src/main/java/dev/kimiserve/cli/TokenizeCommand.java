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

/** {@code kimi tokenize}: a JSON array of strings in, a JSON array of id arrays out (our tokenizer parity check). */
@Command(name = "tokenize", mixinStandardHelpOptions = true, description = "Encode a JSON array of strings to token ids.")
final class TokenizeCommand implements Callable<Integer> {
    @Option(names = "--tokenizer", required = true, paramLabel = "DIR", description = "Directory with tiktoken.model (a model directory).")
    Path tokenizer;

    @Option(names = "--in", required = true, paramLabel = "FILE", description = "JSON array of strings.")
    Path in;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output JSON array of id arrays.")
    Path out;

    @Option(names = "--mode", defaultValue = "all", paramLabel = "MODE",
            description = "all: special-token text becomes special ids; ordinary: it is plain text (default: ${DEFAULT-VALUE}).")
    String mode;

    @Override
    public Integer call() throws Exception {
        if (!mode.equals("all") && !mode.equals("ordinary")) {
            throw new IllegalArgumentException("--mode must be all or ordinary, got " + mode);
        }
        KimiTokenizer tok = KimiTokenizer.load(tokenizer);
        ObjectMapper json = new ObjectMapper();
        JsonNode texts = json.readTree(in.toFile());
        if (texts == null || !texts.isArray()) {
            throw new IllegalArgumentException(in + ": expected a JSON array of strings");
        }
        List<int[]> result = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            if (!texts.get(i).isTextual()) {
                throw new IllegalArgumentException(in + ": element " + i + " is not a string");
            }
            result.add(tok.encode(texts.get(i).asText(), mode.equals("all")));
        }
        Files.writeString(out, json.writeValueAsString(result));
        return 0;
    }
}
