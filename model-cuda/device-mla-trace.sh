#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): where a batch-1 MLA decode launch spends its time.
# Build the traced kernels here first: DEFINES=-DMLA_TRACE model-cuda/build-kernels.sh .device/var/mla-trace
#   bash model-cuda/device-mla-trace.sh
# writes to $OUT: base.jsonl (bench-kernels --only copy,mla_decode with the committed kernels: each B=1 shape is followed
# by a copy moving as many bytes), trace.txt (the traced kernels' S / C lines for the second timed launch at B=1, 32K
# and 128K; summarise with model-cuda/mla-trace-summary.py), ncu.csv (Nsight Compute: each split and combine launch at
# B=1 alone, with its DRAM bytes).
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
[[ -f .device/var/mla-trace/mla_decode.fatbin ]] || { echo "build .device/var/mla-trace first (see the header)"; exit 1; }
bench=("${JAVA[@]}" -cp "$NEW_CP" dev.kimiserve.cli.KimiCli bench-kernels --backend cuda)
"${bench[@]}" --only copy,mla_decode --repeat "${REPEAT:-15}" 2>&1 | grep '^{' | tee "$out/base.jsonl"
# --repeat 3: 10 untimed + 3 timed launches per shape, so the traced 12th and 25th launches are B=1's second timed ones
KIMI_CUDA_KERNELS="$PWD/.device/var/mla-trace" "${bench[@]}" --only mla_decode --repeat 3 > "$out/trace.txt" 2>&1
echo "traced split blocks: $(grep -c '^S ' "$out/trace.txt"), combine blocks: $(grep -c '^C ' "$out/trace.txt")"
# the first 52 launches are B=1's (13 per shape, split and combine each)
timeout 240 ncu --clock-control none --target-processes all -k regex:mla_decode --launch-count 52 \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --csv \
  "${bench[@]}" --only mla_decode --repeat 3 > "$out/ncu.csv" 2> "$out/ncu.err"
tail -1 "$out/ncu.err"
