package dev.kimiserve.protocol;

import java.util.List;

/**
 * A validated, tokenized request: everything the workers need and everything the answerer needs to shape the
 * response. One spec yields {@code n} sequences (choices), choice i sampling with seed {@code sampling.seed + i}.
 *
 * @param kind            "chat" or "completion"
 * @param created         OpenAI "created" (seconds)
 * @param promptTokenIds  the prompt after chat templating and tokenization
 * @param maxTokens       tokens to generate at most per choice
 * @param stopStrings     texts that end a choice (never included in its text)
 * @param stopTokenIds    ids that end a choice (the model's eos ids included unless ignoreEos)
 * @param logprobs        return the chosen tokens' log-probabilities
 * @param topLogprobs     and this many alternatives per position
 * @param detokenize      whether the model has a tokenizer (otherwise text fields stay empty: token-id-only model)
 * @param deadlineMillis  epoch millis after which the request is abandoned (0 = none)
 * @param priority        lower runs first (vLLM convention); 0 by default
 */
public record GenerationSpec(String kind, String model, long created, int[] promptTokenIds, int n, int maxTokens,
                             Sampling sampling, List<String> stopStrings, List<Integer> stopTokenIds, boolean logprobs,
                             int topLogprobs, boolean stream, boolean includeUsage, boolean returnTokenIds, boolean echo,
                             boolean detokenize, long deadlineMillis, int priority, String user) {
    public String sequenceId(String requestId, int choice) {
        return requestId + "/" + choice;
    }
}
