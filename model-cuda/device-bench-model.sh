#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): whole-model benchmarks of the cuda backend on the
# kimi-linear-48b preset's shapes with the first LAYERS layers (random weights, made here first: ~30 GB for 8 layers).
#   LAYERS=8 BATCHES="1 8 32" PROMPT=512 bash model-cuda/device-bench-model.sh
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
java=("${JAVA[@]}" -cp "$NEW_CP")
model="$(m48_model "${LAYERS:-8}")"
for b in ${BATCHES:-1}; do
  "${java[@]}" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$model" --batch "$b" --prompt-tokens "${PROMPT:-512}" \
    --decode-tokens "${DECODE:-64}" --repeat "${REPEAT:-3}" --mode "${MODE:-both}" --read-bandwidth 2>&1 \
    | tee -a "$out/bench-model-cuda.jsonl" | grep -v WARNING
done
