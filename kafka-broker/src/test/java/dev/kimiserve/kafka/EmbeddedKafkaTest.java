package dev.kimiserve.kafka;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import org.junit.jupiter.api.Test;

class EmbeddedKafkaTest {
    @Test
    void controllerPortIsNeverTheBrokerPortEvenWhenTheOperatingSystemOffersIt() throws Exception {
        int taken;
        try (ServerSocket s = new ServerSocket(0)) {
            taken = s.getLocalPort();
        }
        // The operating system tends to offer a just-released port again: the broker's port, chosen by whoever starts
        // the broker and not yet bound, is exactly such a port.
        for (int i = 0; i < 200; i++) {
            assertNotEquals(taken, EmbeddedKafka.freePortOtherThan(taken));
        }
    }

    @Test
    void equalBrokerAndControllerPortsAreRefusedBeforeAnythingStarts() {
        var e = assertThrows(IllegalArgumentException.class, () -> EmbeddedKafka.start(45_123, 45_123, null));
        assertTrue(e.getMessage().contains("45123"), e.getMessage());
    }

    @Test
    void startsOnTheGivenBrokerAndControllerPorts() throws Exception {
        int broker;
        int controller;
        try (ServerSocket a = new ServerSocket(0); ServerSocket b = new ServerSocket(0)) {
            broker = a.getLocalPort();
            controller = b.getLocalPort();
        }
        try (EmbeddedKafka kafka = EmbeddedKafka.start(broker, controller, null)) {
            assertEquals("localhost:" + broker, kafka.bootstrapServers());
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("localhost", controller), 2_000);
            }
        }
    }
}
