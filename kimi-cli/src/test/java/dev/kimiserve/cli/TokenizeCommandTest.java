package dev.kimiserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.testing.SharedFixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The tokenize / detokenize contract against tiktoken's reference encodings. */
class TokenizeCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void tokenizeBothModesAndDetokenizeMatchTheReference() throws Exception {
        Path tok = SharedFixtures.fixture("kimi-tokenizer");
        JsonNode cases = JSON.readTree(tok.resolve("cases.json").toFile()).get("cases");
        var texts = JSON.createArrayNode();
        var all = JSON.createArrayNode();
        var ordinary = JSON.createArrayNode();
        for (int i = 0; i < 40; i++) {
            texts.add(cases.get(i).get("text"));
            all.add(cases.get(i).get("all"));
            ordinary.add(cases.get(i).get("ordinary"));
        }
        Path in = dir.resolve("in.json");
        Files.writeString(in, JSON.writeValueAsString(texts));
        assertEquals(0, KimiCli.run("tokenize", "--tokenizer", tok.toString(), "--in", in.toString(), "--out", dir.resolve("all.json").toString()));
        assertEquals(0, KimiCli.run("tokenize", "--tokenizer", tok.toString(), "--in", in.toString(), "--out", dir.resolve("ord.json").toString(),
                "--mode", "ordinary"));
        assertEquals(all, JSON.readTree(dir.resolve("all.json").toFile()));
        assertEquals(ordinary, JSON.readTree(dir.resolve("ord.json").toFile()));
        assertEquals(0, KimiCli.run("detokenize", "--tokenizer", tok.toString(), "--in", dir.resolve("all.json").toString(),
                "--out", dir.resolve("back.json").toString()));
        assertEquals(texts, JSON.readTree(dir.resolve("back.json").toFile()));
        assertEquals(1, KimiCli.run("tokenize", "--tokenizer", dir.toString(), "--in", in.toString(), "--out", dir.resolve("x.json").toString()));
        assertEquals(1, KimiCli.run("tokenize", "--tokenizer", tok.toString(), "--in", in.toString(), "--out", dir.resolve("y.json").toString(),
                "--mode", "sometimes"));
    }
}
