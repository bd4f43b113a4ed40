package dev.kimiserve.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.testing.SharedFixtures;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** All 400 reference encodings of tiktoken's core, both modes, and the round trip. */
class KimiTokenizerTest {
    static KimiTokenizer tokenizer;
    static List<JsonNode> cases;

    @BeforeAll
    static void load() throws IOException {
        tokenizer = KimiTokenizer.load(SharedFixtures.fixture("kimi-tokenizer"));
        JsonNode root = new ObjectMapper().readTree(SharedFixtures.fixture("kimi-tokenizer").resolve("cases.json").toFile());
        cases = new ArrayList<>();
        root.get("cases").forEach(cases::add);
    }

    static Stream<Arguments> caseIndices() throws IOException {
        load();
        List<Arguments> a = new ArrayList<>();
        for (int i = 0; i < cases.size(); i++) {
            a.add(Arguments.of(i));
        }
        return a.stream();
    }

    @ParameterizedTest(name = "case {0}")
    @MethodSource("caseIndices")
    void matchesTiktokenInBothModesAndRoundTrips(int index) {
        JsonNode c = cases.get(index);
        String text = c.get("text").asText();
        assertArrayEquals(ids(c.get("all")), tokenizer.encode(text, true), "mode all: " + text);
        assertArrayEquals(ids(c.get("ordinary")), tokenizer.encode(text, false), "mode ordinary: " + text);
        // lone surrogates are not Unicode: like tiktoken (through TextEncoder) they encode as U+FFFD and decode as such
        String wellFormed = replaceLoneSurrogates(text);
        assertEquals(wellFormed, tokenizer.decode(tokenizer.encode(text, true)), "round trip (all)");
        assertEquals(wellFormed, tokenizer.decode(tokenizer.encode(text, false)), "round trip (ordinary)");
    }

    @Test
    void bundledTokenizerIsTheSameVocabulary() {
        KimiTokenizer bundled = KimiTokenizer.bundledKimi();
        for (JsonNode c : cases) {
            assertArrayEquals(ids(c.get("all")), bundled.encode(c.get("text").asText(), true));
        }
        assertEquals(163842, bundled.vocabSize());
    }

    static String replaceLoneSurrogates(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(++i));
            } else {
                sb.append(Character.isSurrogate(c) ? '\uFFFD' : c);
            }
        }
        return sb.toString();
    }

    static int[] ids(JsonNode arr) {
        int[] ids = new int[arr.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = arr.get(i).asInt();
        }
        return ids;
    }
}
