package dev.kimiserve.runtime.openai;

import dev.kimiserve.core.chat.ChatFormat;
import dev.kimiserve.core.chat.ChatFormats;
import dev.kimiserve.core.config.ConfigParser;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.tokenizer.KimiTokenizer;
import java.nio.file.Path;
import java.util.List;

/**
 * What the API needs to know about the served model to validate and prepare requests.
 *
 * @param name          the model id clients send ("model")
 * @param tokenizer     null for a model directory without tokenizer files (token-id prompts only)
 * @param chatFormat    null when there is no tokenizer
 * @param maxModelLen   the longest context served (prompt + completion)
 */
public record ModelContext(String name, KimiLinearConfig config, KimiTokenizer tokenizer, ChatFormat chatFormat, int maxModelLen) {
    /** Reads config.json, the tokenizer and chat template of a model directory. */
    public static ModelContext load(Path modelDir, String name, int maxModelLen) {
        KimiLinearConfig cfg = ConfigParser.parse(modelDir);
        KimiTokenizer tok = KimiTokenizer.present(modelDir) ? KimiTokenizer.load(modelDir) : null;
        ChatFormat chat = tok != null ? ChatFormats.forModel(modelDir) : null;
        int len = (int) Math.min(maxModelLen > 0 ? maxModelLen : Integer.MAX_VALUE, cfg.maxContext());
        return new ModelContext(name, cfg, tok, chat, len);
    }

    public int vocabSize() {
        return config.vocabSize();
    }

    public List<Integer> eosTokenIds() {
        return config.eosTokenIds();
    }
}
