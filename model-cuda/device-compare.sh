#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): the current build against an older model-cuda jar, in
# alternating rounds (the card's speed drifts a few percent between runs, so one run each proves little). Whole-model
# decode of the kimi-linear-48b --layers 8 model (made into /dev/shm first, ~60 s); one JSON line per run, labelled.
#   model-cuda/device-prepare-base.sh REV     (here, first: builds REV's model-cuda jar into .device/base)
#   ROUNDS=3 BATCHES="1 16" CONFIGS="base new new:KIMI_CUDA_OVERLAP=0" bash model-cuda/device-compare.sh
# A config is base or new, then optionally :VAR=VALUE,VAR=VALUE set for that run.
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=(/tmp/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=/tmp -Xss4m)
new_cp="$(ls .device/lib/*.jar | grep -v junit-platform-console | paste -sd:)"
base_cp="$(ls .device/base/*.jar 2>/dev/null; ls .device/lib/*.jar | grep -v junit-platform-console | grep -v '/model-cuda-')"
base_cp="$(echo "$base_cp" | paste -sd:)"
model=/dev/shm/m48-8
if [[ ! -f $model/config.json ]]; then
  "${java[@]}" -cp "$new_cp" dev.kimiserve.cli.KimiCli make-model --preset kimi-linear-48b --layers 8 --out "$model" 2>&1 | tail -1
fi
for round in $(seq "${ROUNDS:-3}"); do
  for b in ${BATCHES:-1}; do
    for config in ${CONFIGS:-base new}; do
      jar="${config%%:*}"
      envs=()
      [[ "$config" == *:* ]] && IFS=, read -ra envs <<< "${config#*:}"
      cp="$new_cp"
      [[ "$jar" == base ]] && cp="$base_cp"
      line="$(env "${envs[@]}" "${java[@]}" -cp "$cp" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$model" --mode decode \
        --batch "$b" --prompt-tokens "${PROMPT:-512}" --decode-tokens "${DECODE:-64}" --repeat "${REPEAT:-3}" 2>/dev/null | grep '"mode"')"
      echo "round $round b$b $config $line" | tee -a "$out/compare.txt" | sed 's/,"bytes_per_token.*//'
    done
  done
done
