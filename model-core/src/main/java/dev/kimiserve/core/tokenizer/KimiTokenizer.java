package dev.kimiserve.core.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimiserve.core.ModelFormatException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The Kimi tokenizer with tiktoken's exact semantics (see fixtures/kimi-tokenizer/README.md): the text is cut into
 * pieces of at most 400,000 code points and runs of whitespace / non-whitespace of at most 25,000; in each piece special
 * tokens are found leftmost-first (only when allowed: user content is encoded with special-token text as plain text),
 * the text between them is pre-tokenized by the Kimi regex and each match is byte-pair merged by rank. Thread-safe.
 */
public final class KimiTokenizer {
    public static final String VOCAB_FILE = "tiktoken.model";
    /** The pre-tokenization regex exactly as the model's tokenizer gives it to tiktoken. */
    public static final String KIMI_PATTERN = "[\\p{Han}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*"
            + "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?"
            + "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*"
            + "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final int MAX_PIECE_CODE_POINTS = 400_000;
    static final int MAX_RUN_CODE_POINTS = 25_000;
    private static final String BUNDLED = "/dev/kimiserve/core/tokenizer/kimi/" + VOCAB_FILE;

    private final RankTable ranks;
    private final SpecialTokens specials;
    private final Pattern pattern;
    private final int vocabSize;
    private final String source;

    KimiTokenizer(RankTable ranks, SpecialTokens specials, String regex, String source) {
        this.ranks = ranks;
        this.specials = specials;
        // java.util.regex spells the Han script \p{IsHan} and needs UNICODE_CHARACTER_CLASS for Unicode \s and (?i)
        this.pattern = Pattern.compile(regex.replace("\\p{Han}", "\\p{IsHan}"), Pattern.UNICODE_CHARACTER_CLASS);
        this.vocabSize = Math.max(ranks.size(), specials.maxId() + 1);
        this.source = source;
    }

    /** The tokenizer shipped with the project: the Kimi vocabulary and special tokens. */
    public static KimiTokenizer bundledKimi() {
        try (InputStream in = KimiTokenizer.class.getResourceAsStream(BUNDLED)) {
            if (in == null) {
                throw new IllegalStateException("bundled tokenizer resource " + BUNDLED + " is missing from the build");
            }
            return new KimiTokenizer(parseVocab(in.readAllBytes(), Path.of(BUNDLED)), SpecialTokens.kimi(), KIMI_PATTERN, "bundled Kimi tokenizer");
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + BUNDLED, e);
        }
    }

    /** Writes the bundled Kimi vocabulary into a model directory (tiktoken.model), making it a text model. */
    public static void writeBundled(Path modelDir) throws IOException {
        try (InputStream in = KimiTokenizer.class.getResourceAsStream(BUNDLED)) {
            if (in == null) {
                throw new IllegalStateException("bundled tokenizer resource " + BUNDLED + " is missing from the build");
            }
            Files.createDirectories(modelDir);
            Files.write(modelDir.resolve(VOCAB_FILE), in.readAllBytes());
        }
    }

    /** Whether a model directory ships a tokenizer (tiktoken.model). */
    public static boolean present(Path modelDir) {
        return Files.isRegularFile(modelDir.resolve(VOCAB_FILE));
    }

    /**
     * Loads {@code tiktoken.model} from a model directory, with the named special tokens of its
     * {@code tokenizer_config.json} ({@code added_tokens_decoder}) when present, else the built-in Kimi map.
     */
    public static KimiTokenizer load(Path modelDir) {
        Path vocab = modelDir.resolve(VOCAB_FILE);
        if (!Files.isRegularFile(vocab)) {
            throw ModelFormatException.of(modelDir, "no " + VOCAB_FILE + ": this model directory has no tokenizer");
        }
        try {
            RankTable ranks = parseVocab(Files.readAllBytes(vocab), vocab);
            return new KimiTokenizer(ranks, specialTokens(modelDir), KIMI_PATTERN, vocab.toString());
        } catch (IOException e) {
            throw ModelFormatException.of(vocab, "cannot read: " + e.getMessage(), e);
        }
    }

    private static SpecialTokens specialTokens(Path modelDir) throws IOException {
        Path cfg = modelDir.resolve("tokenizer_config.json");
        if (!Files.isRegularFile(cfg)) {
            return SpecialTokens.kimi();
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(cfg.toFile());
        } catch (IOException e) {
            throw ModelFormatException.of(cfg, "not valid JSON: " + e.getMessage(), e);
        }
        JsonNode added = root.get("added_tokens_decoder");
        if (added == null || !added.isObject() || added.isEmpty()) {
            return SpecialTokens.kimi();
        }
        Map<String, Integer> m = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = added.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int id;
            try {
                id = Integer.parseInt(e.getKey());
            } catch (NumberFormatException ex) {
                throw ModelFormatException.of(cfg, "field 'added_tokens_decoder' key '" + e.getKey() + "' is not a token id");
            }
            JsonNode content = e.getValue().get("content");
            if (content == null || !content.isTextual()) {
                throw ModelFormatException.of(cfg, "field 'added_tokens_decoder." + id + ".content' is missing");
            }
            m.put(content.asText(), id);
        }
        return new SpecialTokens(m);
    }

    /** Parses lines "base64 rank"; ranks must be dense from 0 and unique. */
    static RankTable parseVocab(byte[] file, Path where) {
        List<byte[]> tokens = new ArrayList<>(170_000);
        Base64.Decoder b64 = Base64.getDecoder();
        int line = 0;
        int p = 0;
        while (p < file.length) {
            int end = p;
            while (end < file.length && file[end] != '\n') {
                end++;
            }
            line++;
            int lineEnd = end > p && file[end - 1] == '\r' ? end - 1 : end;
            if (lineEnd > p) {
                int space = p;
                while (space < lineEnd && file[space] != ' ') {
                    space++;
                }
                if (space == lineEnd) {
                    throw ModelFormatException.of(where, "line " + line + " is not '<base64> <rank>'");
                }
                int rank;
                byte[] bytes;
                try {
                    rank = Integer.parseInt(new String(file, space + 1, lineEnd - space - 1, StandardCharsets.US_ASCII).trim());
                    java.nio.ByteBuffer decoded = b64.decode(java.nio.ByteBuffer.wrap(file, p, space - p));
                    bytes = new byte[decoded.remaining()];
                    decoded.get(bytes);
                } catch (IllegalArgumentException e) {
                    throw ModelFormatException.of(where, "line " + line + ": " + e.getMessage());
                }
                if (rank != tokens.size()) {
                    throw ModelFormatException.of(where, "line " + line + " has rank " + rank + ", expected " + tokens.size());
                }
                tokens.add(bytes);
            }
            p = end + 1;
        }
        if (tokens.isEmpty()) {
            throw ModelFormatException.of(where, "no tokens");
        }
        return new RankTable(tokens.toArray(new byte[0][]));
    }

    /** Ids below this are known to the tokenizer (BPE ranks and special tokens). */
    public int vocabSize() {
        return vocabSize;
    }

    public SpecialTokens specialTokens() {
        return specials;
    }

    public String source() {
        return source;
    }

    /** Encodes text; with {@code allowSpecial} special-token text becomes special ids, otherwise it is plain text. */
    public int[] encode(String text, boolean allowSpecial) {
        IntList out = new IntList(Math.max(16, text.length() / 3));
        encode(text, allowSpecial, out);
        return out.toArray();
    }

    public void encode(String text, boolean allowSpecial, IntList out) {
        Encoder enc = new Encoder(out);
        int n = text.length();
        int pieceStart = 0;
        while (pieceStart < n) {
            int pieceEnd = advanceCodePoints(text, pieceStart, MAX_PIECE_CODE_POINTS);
            splitRuns(text, pieceStart, pieceEnd, allowSpecial, enc);
            pieceStart = pieceEnd;
        }
    }

    /** Encodes text with special tokens recognised (the chat template's markers). */
    public int[] encodeWithSpecials(String text) {
        return encode(text, true);
    }

    /** Cuts [from, to) wherever a run of whitespace or of non-whitespace would exceed 25,000 code points. */
    private void splitRuns(String s, int from, int to, boolean allowSpecial, Encoder enc) {
        if (from >= to) {
            return;
        }
        int sliceStart = from;
        int runLength = 0;
        boolean runIsSpace = isPythonSpace(s.codePointAt(from));
        for (int i = from; i < to; ) {
            int cp = s.codePointAt(i);
            boolean space = isPythonSpace(cp);
            if (space != runIsSpace) {
                runLength = 1;
                runIsSpace = space;
            } else if (++runLength > MAX_RUN_CODE_POINTS) {
                encodePiece(s, sliceStart, i, allowSpecial, enc);
                sliceStart = i;
                runLength = 1;
            }
            i += Character.charCount(cp);
        }
        encodePiece(s, sliceStart, to, allowSpecial, enc);
    }

    private void encodePiece(String s, int from, int to, boolean allowSpecial, Encoder enc) {
        int p = from;
        if (allowSpecial) {
            while (p < to) {
                long hit = specials.find(s, p, to);
                if (hit < 0) {
                    break;
                }
                int at = (int) (hit >>> 32);
                int id = (int) hit;
                encodeOrdinary(s, p, at, enc);
                enc.out.add(id);
                p = at + specials.text(id).length();
            }
        }
        encodeOrdinary(s, p, to, enc);
    }

    private void encodeOrdinary(String s, int from, int to, Encoder enc) {
        if (from >= to) {
            return;
        }
        Matcher m = enc.matcher(pattern, s);
        m.region(from, to);
        while (m.find()) {
            int len = enc.utf8(s, m.start(), m.end());
            int whole = ranks.rank(enc.bytes, 0, len);
            if (whole >= 0) {
                enc.out.add(whole);
            } else {
                BytePairMerge.encode(ranks, enc.bytes, 0, len, enc.out);
            }
        }
    }

    /** Python's str.isspace(): the whitespace set tiktoken's splitting uses. */
    static boolean isPythonSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }

    private static int advanceCodePoints(String s, int from, int count) {
        int i = from;
        for (int c = 0; c < count && i < s.length(); c++) {
            i += Character.charCount(s.codePointAt(i));
        }
        return i;
    }

    /** The bytes of one token (special tokens: their UTF-8 text). */
    public byte[] tokenBytes(int id) {
        byte[] b = ranks.bytes(id);
        if (b != null) {
            return b;
        }
        String special = specials.text(id);
        if (special != null) {
            return special.getBytes(StandardCharsets.UTF_8);
        }
        throw new IllegalArgumentException("token id " + id + " is not in the tokenizer's vocabulary [0, " + vocabSize + ")");
    }

    public byte[] decodeBytes(int[] ids) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            out.writeBytes(tokenBytes(id));
        }
        return out.toByteArray();
    }

    /** Decodes ids to text; invalid UTF-8 becomes U+FFFD, as in Python's errors="replace". */
    public String decode(int[] ids) {
        return new String(decodeBytes(ids), StandardCharsets.UTF_8);
    }

    /**
     * Rejects ids the tokenizer knows but the model does not (the 48B model's embedding has 163,840 rows, the
     * tokenizer 163,842 ids): a clear error instead of an out-of-range embedding lookup.
     */
    public void requireModelVocab(int[] ids, int modelVocabSize) {
        for (int id : ids) {
            if (id >= modelVocabSize) {
                String special = specials.text(id);
                throw new IllegalArgumentException("token id " + id + (special != null ? " (" + special + ")" : "")
                        + " is known to the tokenizer but not to the model, whose vocabulary has " + modelVocabSize + " ids");
            }
        }
    }

    /** A decoder that emits text token by token without splitting UTF-8 sequences. */
    public StreamingDetokenizer streamingDetokenizer() {
        return new StreamingDetokenizer(this);
    }

    /** Per-call buffers: a reusable matcher and UTF-8 byte buffer. */
    private static final class Encoder {
        final IntList out;
        byte[] bytes = new byte[256];
        private Matcher matcher;

        Encoder(IntList out) {
            this.out = out;
        }

        Matcher matcher(Pattern p, String s) {
            if (matcher == null) {
                matcher = p.matcher(s);
            }
            return matcher;
        }

        /** UTF-8 of s[from, to) into bytes; a lone surrogate becomes U+FFFD. Returns the length. */
        int utf8(String s, int from, int to) {
            int need = (to - from) * 3;
            if (bytes.length < need) {
                bytes = new byte[Math.max(need, bytes.length * 2)];
            }
            int n = 0;
            for (int i = from; i < to; i++) {
                char c = s.charAt(i);
                if (c < 0x80) {
                    bytes[n++] = (byte) c;
                } else if (c < 0x800) {
                    bytes[n++] = (byte) (0xC0 | (c >> 6));
                    bytes[n++] = (byte) (0x80 | (c & 0x3F));
                } else if (Character.isHighSurrogate(c) && i + 1 < to && Character.isLowSurrogate(s.charAt(i + 1))) {
                    int cp = Character.toCodePoint(c, s.charAt(++i));
                    bytes[n++] = (byte) (0xF0 | (cp >> 18));
                    bytes[n++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                    bytes[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                    bytes[n++] = (byte) (0x80 | (cp & 0x3F));
                } else {
                    char e = Character.isSurrogate(c) ? '\uFFFD' : c;
                    bytes[n++] = (byte) (0xE0 | (e >> 12));
                    bytes[n++] = (byte) (0x80 | ((e >> 6) & 0x3F));
                    bytes[n++] = (byte) (0x80 | (e & 0x3F));
                }
            }
            return n;
        }
    }
}
