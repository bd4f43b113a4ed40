package dev.kimiserve.kvstore;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.kimiserve.core.config.KdaConfig;
import dev.kimiserve.core.config.KimiLinearConfig;
import dev.kimiserve.core.config.LayerKind;
import dev.kimiserve.core.config.MlpKind;
import dev.kimiserve.core.state.SequenceState;
import dev.kimiserve.core.state.StateCodec;
import io.quarkus.test.junit.QuarkusTest;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The blob API: round trip, verification of what comes in, 404, metrics. */
@QuarkusTest
class BlobRoutesTest {
    static byte[] blob() {
        KimiLinearConfig cfg = new KimiLinearConfig(16, 8, 1, List.of(LayerKind.KDA), List.of(MlpKind.DENSE), 16, 1e-5f,
                new KdaConfig(1, 4, 4), null, null, false, 0, List.of(), 0, 1024);
        SequenceState s = SequenceState.create(cfg);
        s.kda(0).recurrent[3] = 1.5f;
        return StateCodec.encode(s, cfg);
    }

    @Test
    void putGetDeleteAndRefuseCorruptBlobs() {
        byte[] b = blob();
        given().body(b).contentType("application/octet-stream").put("/v1/blobs/seq%2Fa%2F0").then().statusCode(204);
        byte[] back = given().get("/v1/blobs/seq%2Fa%2F0").then().statusCode(200).extract().asByteArray();
        assertArrayEquals(b, back);
        byte[] corrupt = b.clone();
        corrupt[40] ^= 1;
        given().body(corrupt).contentType("application/octet-stream").put("/v1/blobs/bad").then().statusCode(400)
                .body(containsString("checksum"));
        given().get("/v1/blobs/bad").then().statusCode(404);
        given().delete("/v1/blobs/seq%2Fa%2F0").then().statusCode(204);
        given().get("/v1/blobs/seq%2Fa%2F0").then().statusCode(404);
        given().get("/q/metrics").then().statusCode(200).body(containsString("kimi_kvstore_rejected"));
        given().get("/q/health/ready").then().statusCode(200);
    }
}
