#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): Nsight Compute's per-source-line view of KDA prefill
# kernels at T=16,384 (bench-kernels --only kda_prefill; each kernel runs 26 times per shape, so --launch-skip 52),
# with SASS. Needs the kernels built with -lineinfo into .device/klines first, here:
#   LINEINFO=1 model-cuda/build-kernels.sh .device/klines && model-cuda/device-prepare.sh
#   KERNELS="kda_chunk_prep kda_chunk_state" bash model-cuda/device-ncu-source.sh
# Writes $OUT/KERNEL-source.csv and KERNEL-details.txt; summarise with model-cuda/ncu-source-summary.py.
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
[[ -d .device/klines ]] || { echo "no .device/klines: run LINEINFO=1 model-cuda/build-kernels.sh .device/klines here first"; exit 1; }
for kernel in ${KERNELS:-kda_chunk_prep kda_chunk_state kda_chunk_output}; do
  KIMI_CUDA_KERNELS="$PWD/.device/klines" timeout 240 ncu --clock-control none --target-processes all -k "regex:$kernel" \
    --launch-skip "${SKIP:-52}" --launch-count 1 --section SourceCounters --section WarpStateStats --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --import-source yes -o "$out/$kernel" \
    "${JAVA[@]}" -cp "$NEW_CP" dev.kimiserve.cli.KimiCli bench-kernels --backend cuda --only "${FAMILY:-kda_prefill}" --repeat 3 \
    > "$out/$kernel-run.txt" 2>&1
  ncu -i "$out/$kernel.ncu-rep" --page source --csv --print-source cuda,sass > "$out/$kernel-source.csv" 2> "$out/$kernel-source.err"
  ncu -i "$out/$kernel.ncu-rep" --page details > "$out/$kernel-details.txt" 2>&1
  rm -f "$out/$kernel.ncu-rep"
  echo "$kernel:"; grep -E "Duration|Executed Ipc Active|Issue Slots Busy|Memory Throughput" "$out/$kernel-details.txt"
done
