#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): the current build against an older model-cuda jar, in
# alternating rounds (the card's speed drifts a few percent between runs, so one run each proves little). Whole-model
# decode of the kimi-linear-48b --layers 8 model (made into /dev/shm first, ~60 s); one JSON line per run, labelled.
#   model-cuda/device-prepare-base.sh REV     (here, first: builds REV's model-cuda jar into .device/base)
#   ROUNDS=3 BATCHES="1 16" CONFIGS="base new new:KIMI_CUDA_OVERLAP=0" bash model-cuda/device-compare.sh
# A config is base or new, then optionally :VAR=VALUE+VAR=VALUE set for that run (values may hold commas).
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
model="$(m48_model 8)"
for round in $(seq "${ROUNDS:-3}"); do
  for b in ${BATCHES:-1}; do
    for config in ${CONFIGS:-base new}; do
      jar="${config%%:*}"
      envs=()
      [[ "$config" == *:* ]] && IFS=+ read -ra envs <<< "${config#*:}"
      cp="$NEW_CP"
      [[ "$jar" == base ]] && cp="$BASE_CP"
      line="$(env "${envs[@]}" "${JAVA[@]}" -cp "$cp" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$model" --mode decode \
        --batch "$b" --prompt-tokens "${PROMPT:-512}" --decode-tokens "${DECODE:-64}" --repeat "${REPEAT:-3}" 2>/dev/null | grep '"mode"')"
      echo "round $round b$b $config $line" | tee -a "$out/compare.txt" | sed 's/,"bytes_per_token.*//'
    done
  done
done
