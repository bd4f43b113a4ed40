#!/usr/bin/env bash
# Here, before a run on the GPU machine: builds the jars and a small Java runtime into .device/ (git-ignored), which
# the device tool carries (.device, under 64 MiB in all). The GPU machine has no Java; see ../shared/docs/gpu-device.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
./mvnw -q -B -pl model-cuda,kimi-cli -am install -DskipTests
mkdir -p .device/lib
find .device/lib -name '*.jar' ! -name 'junit-platform-console-standalone-*' -delete
# only what the GPU tests and kernel benchmarks load (the chat-template stack stays home: 64 MiB travel limit)
cp kimi-cli/target/kimi-cli.jar .device/lib/
for jar in picocli model-core model-cuda jcuda jcuda-natives jackson-core jackson-databind jackson-annotations; do
  cp kimi-cli/target/lib/"$jar"-[0-9]*.jar .device/lib/
done
cp model-cuda/target/model-cuda-*-tests.jar model-core/target/model-core-*-tests.jar .device/lib/
if [[ ! -f .device/lib/junit-platform-console-standalone-6.0.3.jar ]]; then
  ./mvnw -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:6.0.3 -DoutputDirectory=.device/lib
fi
if [[ ! -f .device/jre.tgz ]]; then
  rm -rf .device/jre
  "$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,java.management,java.xml,jdk.zipfs,jdk.unsupported,jdk.incubator.vector \
    --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output .device/jre
  tar czf .device/jre.tgz -C .device jre
  rm -rf .device/jre
fi
# the tiny-a fixture for the golden tests on cuda (KIMI_SHARED points here on the GPU machine)
rm -rf .device/shared && mkdir -p .device/shared/fixtures && cp -r ../shared/fixtures/tiny-a .device/shared/fixtures/
du -sh .device
