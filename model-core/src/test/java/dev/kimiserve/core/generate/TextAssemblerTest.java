package dev.kimiserve.core.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Stop strings never reach the client, however the tokens split them; text without stops passes unchanged. */
class TextAssemblerTest {
    static final KimiTokenizer TOK = KimiTokenizer.bundledKimi();

    static String run(String text, List<String> stops, boolean[] stopped) {
        TextAssembler a = new TextAssembler(TOK, stops);
        StringBuilder out = new StringBuilder();
        for (int id : TOK.encode(text, false)) {
            out.append(a.push(id));
            if (a.stopped()) {
                break;
            }
        }
        out.append(a.finish());
        stopped[0] = a.stopped();
        return out.toString();
    }

    @Test
    void cutsBeforeTheFirstStopStringAcrossTokenBoundaries() {
        boolean[] stopped = new boolean[1];
        assertEquals("The answer is 42.", run("The answer is 42.\nUser: next question", List.of("\nUser:", "###"), stopped));
        assertTrue(stopped[0]);
        assertEquals("中文", run("中文测试结束", List.of("测试"), stopped));
        assertTrue(stopped[0]);
    }

    @Test
    void heldBackTextIsReleasedWhenItCannotBeAStop() {
        boolean[] stopped = new boolean[1];
        String text = "User interface and Use cases, 👨‍👩‍👧 emoji";
        assertEquals(text, run(text, List.of("User:"), stopped));
        assertFalse(stopped[0]);
        assertEquals(text, run(text, List.of(), stopped));
    }
}
