package dev.kimiserve.gateway;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

import jakarta.inject.Inject;
import java.time.Duration;

/** Request metrics under vLLM's names (so existing dashboards and the Gateway API Inference Extension can use them). */
@jakarta.inject.Singleton
public class GatewayMetrics {
    @Inject
    MeterRegistry registry;

    Timer ttft;
    Timer itl;
    Timer e2e;
    Counter promptTokens;
    Counter generationTokens;

    @jakarta.annotation.PostConstruct
    void init() {
        ttft = Timer.builder("vllm:time_to_first_token_seconds").description("Time to first token, as the client sees it")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofMinutes(2)).register(registry);
        itl = Timer.builder("vllm:inter_token_latency_seconds").description("Time between consecutive tokens of a choice")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofSeconds(30)).register(registry);
        e2e = Timer.builder("vllm:e2e_request_latency_seconds").description("Request latency from arrival to the last byte")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofMinutes(10)).register(registry);
        promptTokens = Counter.builder("vllm:prompt_tokens").description("Prompt tokens processed").register(registry);
        generationTokens = Counter.builder("vllm:generation_tokens").description("Tokens generated").register(registry);
    }

    void finished(String reason) {
        Counter.builder("vllm:request_success").tag("finished_reason", reason).register(registry).increment();
    }

    void failed(int status) {
        Counter.builder("kimi_request_errors").tag("status", Integer.toString(status)).register(registry).increment();
    }

}
