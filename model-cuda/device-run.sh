#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): the gpu-tagged tests, then the CUDA kernel benchmarks.
# Results go to $OUT (junit reports, bench lines); the last lines printed are the summary.
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
tar xzf .device/jre.tgz -C /tmp
java=(/tmp/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=/tmp -Xss4m)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"
export KIMI_SHARED="${KIMI_SHARED:-$PWD/.device/shared}"
select=(--scan-classpath "$(ls .device/lib/model-cuda-*-tests.jar)")       # TESTS=a.b.C runs that class only
[[ -n "${TESTS:-}" ]] && select=(--select-class "$TESTS")
cp="$(ls .device/lib/*.jar | grep -v junit-platform-console | paste -sd:)"     # the console takes no wildcards
"${java[@]}" -jar .device/lib/junit-platform-console-standalone-6.0.3.jar execute -cp "$cp" \
  "${select[@]}" --include-tag gpu --details=tree --disable-banner --disable-ansi-colors \
  --reports-dir "$out/junit" 2>&1 | tee "$out/junit.txt" | grep -v "^\s*$" | tail -${TAIL:-40}
[[ -n "${TESTS_ONLY:-}" ]] && exit 0
"${java[@]}" -cp '.device/lib/*' dev.kimiserve.cli.KimiCli bench-kernels --backend cuda --repeat ${REPEAT:-50} ${BENCH_ARGS:-} 2>&1 \
  | tee "$out/bench-kernels-cuda.jsonl" | grep -v '^\s*$' | tail -20
# the peer, in the same run: torch.nn.functional.linear (cuBLAS) on the same projection shapes
python3 model-cuda/peers/torch_linear.py 2>&1 | tee "$out/torch-linear.jsonl" | tail -12
