package dev.kimiserve.cli;

import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.LoadedModel;
import dev.kimiserve.core.safetensors.SafetensorsWriter;
import dev.kimiserve.core.state.SequenceState;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code kimi logits}: the correctness contract. Writes float32 {@code prefill_logits} [L, vocab] from one forward pass
 * over the input ids (no cache), and with {@code --decode-ids} {@code decode_logits} [n, vocab]: the logits after
 * feeding each decode id in turn through the cached decode path (teacher forcing).
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Write prefill (and teacher-forced decode) logits to a safetensors file.")
final class LogitsCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--input-ids", required = true, converter = TokenIds.class, paramLabel = "IDS", description = "Prompt ids, e.g. 5,9,13.")
    TokenIds.IdList inputIds;

    @Option(names = "--decode-ids", converter = TokenIds.class, paramLabel = "IDS", description = "Ids fed one at a time after the prompt.")
    TokenIds.IdList decodeIds;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output .safetensors file.")
    Path out;

    @Override
    public Integer call() throws Exception {
        try (LoadedModel loaded = modelOptions.open(); Engine engine = modelOptions.engine(loaded)) {
            int vocab = loaded.config().vocabSize();
            SequenceState state = engine.newState();
            float[] prefill = engine.prefill(inputIds.ids(), state, Engine.Logits.ALL);
            SafetensorsWriter writer = new SafetensorsWriter()
                    .metadata("backend", engine.backend())
                    .metadata("model", loaded.directory().toAbsolutePath().toString())
                    .addF32("prefill_logits", new long[]{inputIds.ids().length, vocab}, prefill);
            if (decodeIds != null) {
                float[] decode = new float[decodeIds.ids().length * vocab];
                for (int i = 0; i < decodeIds.ids().length; i++) {
                    System.arraycopy(engine.decode(decodeIds.ids()[i], state), 0, decode, i * vocab, vocab);
                }
                writer.addF32("decode_logits", new long[]{decodeIds.ids().length, vocab}, decode);
            }
            writer.write(out);
            System.out.println("wrote " + out + " (prefill_logits [" + inputIds.ids().length + ", " + vocab + "]"
                    + (decodeIds != null ? ", decode_logits [" + decodeIds.ids().length + ", " + vocab + "]" : "") + ", backend " + engine.backend() + ")");
        }
        return 0;
    }
}
