package dev.kimiserve.core.tokenizer;

import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The special tokens of a tokenizer (text -> id) and a matcher that finds them leftmost-first in text. The built-in
 * map is the Kimi family's: 256 reserved ids from 163584 with the named ones below, plus 163840 and 163841.
 */
public final class SpecialTokens {
    public static final int KIMI_FIRST_ID = 163584;
    public static final int KIMI_COUNT = 258;

    private static final Map<Integer, String> KIMI_NAMED = Map.ofEntries(
            Map.entry(163584, "[BOS]"), Map.entry(163585, "[EOS]"), Map.entry(163586, "<|im_end|>"),
            Map.entry(163587, "<|im_user|>"), Map.entry(163588, "<|im_assistant|>"), Map.entry(163590, "<|start_header_id|>"),
            Map.entry(163591, "<|end_header_id|>"), Map.entry(163593, "[EOT]"), Map.entry(163594, "<|im_system|>"),
            Map.entry(163595, "<|tool_calls_section_begin|>"), Map.entry(163596, "<|tool_calls_section_end|>"),
            Map.entry(163597, "<|tool_call_begin|>"), Map.entry(163598, "<|tool_call_argument_begin|>"),
            Map.entry(163599, "<|tool_call_end|>"), Map.entry(163601, "<|im_middle|>"), Map.entry(163838, "[UNK]"),
            Map.entry(163839, "[PAD]"));

    private final Map<String, Integer> byText;
    private final Map<Integer, String> byId;
    private final Node root = new Node();

    public SpecialTokens(Map<String, Integer> byText) {
        this.byText = Collections.unmodifiableMap(new LinkedHashMap<>(byText));
        Map<Integer, String> ids = new HashMap<>();
        byText.forEach((text, id) -> {
            if (text.isEmpty()) {
                throw new IllegalArgumentException("empty special token for id " + id);
            }
            if (ids.put(id, text) != null) {
                throw new IllegalArgumentException("special token id " + id + " is used twice");
            }
            Node n = root;
            for (int i = 0; i < text.length(); i++) {
                n = n.children.computeIfAbsent(text.charAt(i), c -> new Node());
            }
            n.id = id;
        });
        this.byId = Collections.unmodifiableMap(ids);
    }

    /** The built-in Kimi map (ids 163584 .. 163841). */
    public static SpecialTokens kimi() {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (int id = KIMI_FIRST_ID; id < KIMI_FIRST_ID + KIMI_COUNT; id++) {
            m.put(KIMI_NAMED.getOrDefault(id, "<|reserved_token_" + id + "|>"), id);
        }
        return new SpecialTokens(m);
    }

    public Map<String, Integer> byText() {
        return byText;
    }

    public Integer id(String text) {
        return byText.get(text);
    }

    public String text(int id) {
        return byId.get(id);
    }

    public boolean isSpecial(int id) {
        return byId.containsKey(id);
    }

    public int maxId() {
        return byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1);
    }

    /**
     * The first special token at or after {@code from} in s[from, to): returns (start << 32 | id) or -1. When tokens
     * start at the same position the longest wins (none of the Kimi tokens is a prefix of another).
     */
    long find(CharSequence s, int from, int to) {
        for (int p = from; p < to; p++) {
            Node n = root.children.get(s.charAt(p));
            if (n == null) {
                continue;
            }
            int found = -1;
            for (int q = p + 1; ; q++) {
                if (n.id >= 0) {
                    found = n.id;
                }
                if (q >= to) {
                    break;
                }
                n = n.children.get(s.charAt(q));
                if (n == null) {
                    break;
                }
            }
            if (found >= 0) {
                return (long) p << 32 | found;
            }
        }
        return -1;
    }

    private static final class Node {
        final Map<Character, Node> children = new HashMap<>(4);
        int id = -1;
    }
}
