package dev.kimiserve.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kimiserve.core.model.Backends;
import dev.kimiserve.core.model.Engine;
import dev.kimiserve.core.model.EngineProvider;
import dev.kimiserve.core.testing.TinyA;
import org.junit.jupiter.api.Test;

/**
 * The cuda backend is found through the ServiceLoader and chosen by {@code auto} exactly when a device is usable; on
 * a machine without one (CI) {@code auto} falls back to cpu and an explicit {@code cuda} fails with the reason.
 */
class CudaBackendSelectionTest {
    @Test
    void autoTakesCudaOnlyWhereADeviceIsUsable() {
        EngineProvider provider = Backends.provider("cuda");
        assertNotNull(provider, "model-cuda registers a provider named cuda");
        String reason = provider.unavailableReason();
        try (TinyA tiny = new TinyA(); Engine auto = Backends.create("auto", tiny.model.weights(), 1)) {
            assertEquals(reason == null ? "cuda" : "cpu", auto.backend());
            if (reason != null) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.create("cuda", tiny.model.weights(), 1));
                assertTrue(e.getMessage().contains("backend 'cuda' is not available") && e.getMessage().contains(reason), e.getMessage());
            }
        }
    }
}
