package dev.kimiserve.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimiserve.core.testing.SharedFixtures;
import dev.kimiserve.core.testing.TinyA;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Placement does not change the output: the same requests served by a prefill worker handing off to a decode worker
 * (state through the kv-store) and by one combined worker give the same tokens and the same log-probabilities.
 */
class PlacementIT {
    /** Greedy, sampled, several choices, log-probabilities, a long prompt. */
    static List<String> requests(TinyA tiny) {
        return List.of(
                TinyPlatformIT.completion(tiny.prompt(7), 24, ", \"temperature\": 0, \"ignore_eos\": true"),
                TinyPlatformIT.completion(tiny.prompt(150), 40, ", \"temperature\": 0.9, \"top_k\": 50, \"seed\": 11, \"ignore_eos\": true"),
                TinyPlatformIT.completion(tiny.prompt(64), 16, ", \"n\": 2, \"temperature\": 1.0, \"seed\": 3, \"logprobs\": 3, \"ignore_eos\": true"),
                TinyPlatformIT.completion(tiny.prompt(7), 20, ", \"temperature\": 0.7, \"repetition_penalty\": 1.3, \"seed\": 5, \"ignore_eos\": true"));
    }

    /** Per request, per choice: the token ids and the chosen tokens' log-probabilities. */
    record Output(List<List<Integer>> tokens, List<List<Double>> logprobs) {
    }

    static List<Output> serve(String name, int prefill, int decode, int combined, List<String> requests) {
        try (Platform p = Platform.start(name, SharedFixtures.tinyA(), "tiny-a", prefill, decode, combined, Map.of())) {
            List<Output> out = new ArrayList<>();
            for (String r : requests) {
                OpenAi.Reply reply = p.api.post("/v1/completions", r);
                assertEquals(200, reply.status(), String.valueOf(reply.body()));
                List<List<Integer>> tokens = new ArrayList<>();
                List<List<Double>> logprobs = new ArrayList<>();
                for (JsonNode choice : reply.body().get("choices")) {
                    tokens.add(OpenAi.ints(choice.get("token_ids")));
                    List<Double> lp = new ArrayList<>();
                    choice.path("logprobs").path("token_logprobs").forEach(x -> lp.add(x.asDouble()));
                    logprobs.add(lp);
                }
                out.add(new Output(tokens, logprobs));
            }
            return out;
        }
    }

    @Test
    void prefillOnOneWorkerAndDecodeOnAnotherMatchOneWorkerDoingBoth() {
        List<String> requests;
        try (TinyA tiny = new TinyA()) {
            requests = requests(tiny);
        }
        List<Output> split = serve("split", 1, 1, 0, requests);
        List<Output> combined = serve("combined", 0, 0, 1, requests);
        for (int i = 0; i < requests.size(); i++) {
            assertEquals(combined.get(i).tokens(), split.get(i).tokens(), "request " + i + ": the same tokens");
            List<List<Double>> a = combined.get(i).logprobs();
            List<List<Double>> b = split.get(i).logprobs();
            assertEquals(a.size(), b.size());
            for (int c = 0; c < a.size(); c++) {
                assertEquals(a.get(c).size(), b.get(c).size());
                for (int t = 0; t < a.get(c).size(); t++) {
                    assertEquals(a.get(c).get(t), b.get(c).get(t), 1e-5, "request " + i + " choice " + c + " token " + t);
                }
            }
        }
        assertEquals(2, split.get(2).tokens().size(), "n = 2 gives two choices");
        assertEquals(16, split.get(2).logprobs().get(0).size(), "logprobs for every token");
        assertNotEquals(split.get(2).tokens().get(0), split.get(2).tokens().get(1), "two sampled choices differ");
    }
}
