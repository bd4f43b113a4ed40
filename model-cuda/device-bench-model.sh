#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): whole-model benchmarks of the cuda backend on the
# kimi-linear-48b preset's shapes with the first LAYERS layers (random weights, made here first: ~30 GB for 8 layers).
#   LAYERS=8 BATCHES="1 8 32" PROMPT=512 bash model-cuda/device-bench-model.sh
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=(/tmp/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=/tmp -Xss4m -cp '.device/lib/*')
model=/tmp/m48-${LAYERS:-8}
[[ -d /dev/shm ]] && model=/dev/shm/m48-${LAYERS:-8}                              # RAM: no disk writes
if [[ ! -f $model/config.json ]]; then
  start=$(date +%s)
  "${java[@]}" dev.kimiserve.cli.KimiCli make-model --preset kimi-linear-48b --layers "${LAYERS:-8}" --out "$model" 2>&1 | tail -1
  echo "make-model: $(( $(date +%s) - start )) s, $(du -sh "$model" | cut -f1)"
fi
for b in ${BATCHES:-1}; do
  "${java[@]}" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$model" --batch "$b" --prompt-tokens "${PROMPT:-512}" \
    --decode-tokens "${DECODE:-64}" --repeat "${REPEAT:-3}" --mode "${MODE:-both}" --read-bandwidth 2>&1 \
    | tee -a "$out/bench-model-cuda.jsonl" | grep -v WARNING
done
