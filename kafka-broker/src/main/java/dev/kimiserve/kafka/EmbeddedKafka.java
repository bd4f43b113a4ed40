package dev.kimiserve.kafka;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Stream;
import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;
import kafka.tools.StorageTool;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.utils.Time;

/**
 * A real single-node Kafka broker in KRaft mode (one process is both broker and controller): the storage is formatted
 * with Kafka's own StorageTool, then a {@link KafkaRaftServer} runs. Used in-JVM by the tests and as its own process by
 * {@code ./kimi up} ({@link #main}).
 */
public final class EmbeddedKafka implements AutoCloseable {
    private final KafkaRaftServer server;
    private final Path dataDir;
    private final boolean deleteOnClose;
    private final String bootstrap;

    private EmbeddedKafka(KafkaRaftServer server, Path dataDir, boolean deleteOnClose, String bootstrap) {
        this.server = server;
        this.dataDir = dataDir;
        this.deleteOnClose = deleteOnClose;
        this.bootstrap = bootstrap;
    }

    /**
     * @param port    broker port, 0 for a free one
     * @param dataDir log directory, null for a temporary one deleted on close
     */
    public static EmbeddedKafka start(int port, Path dataDir) {
        return start(port, 0, dataDir);
    }

    /**
     * @param port           broker port, 0 for a free one
     * @param controllerPort KRaft controller port, 0 for a free one other than the broker's
     * @param dataDir        log directory, null for a temporary one deleted on close
     */
    public static EmbeddedKafka start(int port, int controllerPort, Path dataDir) {
        if (port > 0 && port == controllerPort) {
            throw new IllegalArgumentException("the broker and controller ports must differ, both are " + port);
        }
        try {
            boolean temporary = dataDir == null;
            Path dir = temporary ? Files.createTempDirectory("kimi-kafka") : Files.createDirectories(dataDir);
            int brokerPort = port > 0 ? port : freePortOtherThan(controllerPort);
            if (controllerPort <= 0) {
                controllerPort = freePortOtherThan(brokerPort);
            }
            Properties p = new Properties();
            p.putAll(Map.ofEntries(
                    Map.entry("process.roles", "broker,controller"),
                    Map.entry("node.id", "1"),
                    Map.entry("controller.quorum.voters", "1@localhost:" + controllerPort),
                    Map.entry("listeners", "PLAINTEXT://localhost:" + brokerPort + ",CONTROLLER://localhost:" + controllerPort),
                    Map.entry("advertised.listeners", "PLAINTEXT://localhost:" + brokerPort),
                    Map.entry("controller.listener.names", "CONTROLLER"),
                    Map.entry("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                    Map.entry("inter.broker.listener.name", "PLAINTEXT"),
                    Map.entry("log.dirs", dir.resolve("logs").toString()),
                    Map.entry("num.partitions", "1"),
                    Map.entry("auto.create.topics.enable", "true"),
                    Map.entry("offsets.topic.replication.factor", "1"),
                    Map.entry("offsets.topic.num.partitions", "4"),
                    Map.entry("transaction.state.log.replication.factor", "1"),
                    Map.entry("transaction.state.log.min.isr", "1"),
                    Map.entry("share.coordinator.state.topic.replication.factor", "1"),
                    Map.entry("group.initial.rebalance.delay.ms", "0"),
                    Map.entry("log.cleaner.dedupe.buffer.size", Integer.toString(4 << 20)),
                    Map.entry("log.segment.bytes", Integer.toString(64 << 20)),
                    Map.entry("log.retention.hours", "6")));
            Path config = dir.resolve("server.properties");
            try (var out = Files.newOutputStream(config)) {
                p.store(out, "kimi-serve embedded KRaft broker");
            }
            ByteArrayOutputStream formatLog = new ByteArrayOutputStream();
            if (!Files.exists(dir.resolve("logs").resolve("meta.properties"))) {
                int rc = StorageTool.execute(new String[]{"format", "-t", Uuid.randomUuid().toString(), "-c", config.toString()},
                        new PrintStream(formatLog, true, StandardCharsets.UTF_8));
                if (rc != 0) {
                    throw new IllegalStateException("kafka storage format failed: " + formatLog.toString(StandardCharsets.UTF_8));
                }
            }
            KafkaRaftServer server = new KafkaRaftServer(KafkaConfig.fromProps(p, false), Time.SYSTEM);
            server.startup();
            waitForPort(brokerPort, 30_000);
            return new EmbeddedKafka(server, dir, temporary, "localhost:" + brokerPort);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public String bootstrapServers() {
        return bootstrap;
    }

    @Override
    public void close() {
        server.shutdown();
        server.awaitShutdown();
        if (deleteOnClose) {
            try (Stream<Path> files = Files.walk(dataDir)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            } catch (IOException ignored) {
                // best effort: a temp directory
            }
        }
    }

    /**
     * A port nothing listens on now, never {@code taken}: a port chosen by whoever starts this broker is free until the
     * broker binds it, so the operating system may hand it out again here.
     */
    static int freePortOtherThan(int taken) throws IOException {
        while (true) {
            try (ServerSocket s = new ServerSocket(0)) {
                if (s.getLocalPort() != taken) {
                    return s.getLocalPort();
                }
            }
        }
    }

    private static void waitForPort(int port, long timeoutMillis) {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (System.currentTimeMillis() < deadline) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("localhost", port), 200);
                return;
            } catch (IOException e) {
                try {
                    Thread.sleep(50);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
        throw new IllegalStateException("kafka broker did not open port " + port + " within " + timeoutMillis + " ms");
    }

    /**
     * Runs a broker until the process is stopped: {@code --port N} (default 9092), {@code --controller-port N} (default a
     * free one), {@code --dir PATH} (default a temp directory). Prints "KAFKA_READY localhost:N" once the port accepts
     * connections.
     */
    public static void main(String[] args) throws InterruptedException {
        int port = 9092;
        int controllerPort = 0;
        Path dir = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--controller-port" -> controllerPort = Integer.parseInt(args[++i]);
                case "--dir" -> dir = Path.of(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (use --port N --controller-port N --dir PATH)");
            }
        }
        EmbeddedKafka kafka = start(port, controllerPort, dir);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            kafka.close();
            stopped.countDown();
        }, "kafka-shutdown"));
        System.out.println("KAFKA_READY " + kafka.bootstrapServers());
        System.out.flush();
        stopped.await();
    }
}
