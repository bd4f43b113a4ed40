#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): Nsight Compute over a whole-model decode of the 48B-shaped
# --layers 8 model (made into /dev/shm first), graphs off so that each kernel is seen.
#   BATCH=1 bash model-cuda/device-ncu.sh                       per-kernel time and DRAM bytes of ~2 decode steps
#                                                               ($OUT/ncu-b1.csv; summarise with model-cuda/ncu-summary.py)
#   BATCH=1 KERNEL=moe_route bash model-cuda/device-ncu.sh      stall reasons and hot source lines of one launch
#   BASE=1 BATCH=1 bash model-cuda/device-ncu.sh                the same for the jar of device-prepare-base.sh
#   FAMILY=kda_prefill KERNEL=kda_chunk_prep SKIP=52 bash ...   stall reasons of one kernel of bench-kernels --only FAMILY
#                                                               (--repeat 3) instead of the model (no model is made);
#                                                               each KDA prefill kernel runs 26 times per shape, so
#                                                               SKIP=52 lands on T=16,384
#   SOURCE=1 FAMILY=... KERNEL=... SKIP=...                     the same kernel's per-source-line view with SASS
#                                                               ($OUT/KERNEL-source.csv; summarise with
#                                                               model-cuda/ncu-source-summary.py), from the kernels built
#                                                               here first with LINEINFO=1 model-cuda/build-kernels.sh
#                                                               .device/klines (rebuild after every .cu edit)
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
b="${BATCH:-1}"
cp="$NEW_CP"
[[ -n "${BASE:-}" ]] && cp="$BASE_CP"       # BASE=1: the model-cuda jar of device-prepare-base.sh instead of this build's
java=(/tmp/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=/tmp -cp "$cp")
if [[ -n "${FAMILY:-}" ]]; then
  app=("${java[@]}" dev.kimiserve.cli.KimiCli bench-kernels --backend cuda --only "$FAMILY" --repeat 3)
else
  app=("${java[@]}" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$(m48_model 8)" --mode decode --batch "$b"
       --prompt-tokens "${PROMPT:-16}" --decode-tokens 64 --repeat 1)
fi
if [[ -n "${SOURCE:-}" ]]; then
  [[ -d .device/klines && -n "${KERNEL:-}" ]] || { echo "SOURCE=1 needs KERNEL and .device/klines (LINEINFO=1 build-kernels.sh)"; exit 1; }
  KIMI_CUDA_KERNELS="$PWD/.device/klines" KIMI_CUDA_GRAPHS=0 timeout 300 ncu --clock-control none --target-processes all \
    -k "regex:$KERNEL" --launch-skip "${SKIP:-200}" --launch-count 1 --section SourceCounters --section WarpStateStats \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --import-source yes -o "$out/$KERNEL" "${app[@]}" > "$out/$KERNEL-run.txt" 2>&1
  ncu -i "$out/$KERNEL.ncu-rep" --page source --csv --print-source cuda,sass > "$out/$KERNEL-source.csv" 2> "$out/$KERNEL-source.err"
  ncu -i "$out/$KERNEL.ncu-rep" --page details > "$out/$KERNEL-details.txt" 2>&1
  rm -f "$out/$KERNEL.ncu-rep"
  grep -E "Duration|Executed Ipc Active|Issue Slots Busy|Memory Throughput" "$out/$KERNEL-details.txt"
elif [[ -n "${KERNEL:-}" ]]; then
  KIMI_CUDA_GRAPHS=0 timeout 300 ncu --clock-control none --target-processes all -k "regex:$KERNEL" --launch-skip "${SKIP:-200}" \
    --launch-count 1 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
    --section SourceCounters --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
    --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
    "${app[@]}" > "$out/ncu-${KERNEL//[^A-Za-z0-9_]/}-b$b.txt" 2>&1
  grep -v "^WARNING" "$out/ncu-${KERNEL//[^A-Za-z0-9_]/}-b$b.txt" | tail -${TAIL:-60}
else
  KIMI_CUDA_GRAPHS=0 timeout 300 ncu --clock-control none --cache-control none --target-processes all --launch-skip "${SKIP:-5000}" \
    --launch-count 330 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --print-summary per-kernel --csv \
    "${app[@]}" > "$out/ncu-b$b${BASE:+-base}.csv" 2> "$out/ncu-b$b${BASE:+-base}.err"
  tail -2 "$out/ncu-b$b${BASE:+-base}.err"
fi
