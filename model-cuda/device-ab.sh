#!/usr/bin/env bash
# On the GPU machine (through the device tool, carry .device): A/B runs of the cuda engine's optional paths on the
# kimi-linear-48b --layers 8 model (made into /dev/shm first, ~60 s), one JSON line per run with the setting in front.
#   PART=decode  bash model-cuda/device-ab.sh   decode b1 for each gemv tiling
#   PART=prefill bash model-cuda/device-ab.sh   512-token prefill with the tensor-core GEMVs from 4 rows (default) and off
#   PART=tc      bash model-cuda/device-ab.sh   decode b1, b4 and b16 with the tensor-core GEMVs from 1 row and off, and b64
#   PART=long    bash model-cuda/device-ab.sh   a 16K-token prompt and decode after it
#   PART=overlap bash model-cuda/device-ab.sh   decode b1, b16 and 512-token prefill with overlapped launches on and off
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source "$(dirname "$0")/device-common.sh"
java=("${JAVA[@]}" -cp "$NEW_CP")
model="$(m48_model 8)"
bench() {   # bench LABEL ENV... -- ARGS...
  local label="$1"; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" "${java[@]}" dev.kimiserve.cli.KimiCli bench --backend cuda --model "$model" "$@" 2>/dev/null \
    | grep '"mode"' | grep -v '"mode":"read_bandwidth"' | sed "s/^/$label /" | tee -a "$out/ab.txt"
}
case "${PART:-decode}" in
  decode)
    for g in warp c1w1 c2w1 c4w1 c1w2 c1w4 c2w2 c2w4; do
      bench "gemv=$g" KIMI_CUDA_GEMV=$g -- --mode decode --batch 1 --prompt-tokens 512 --decode-tokens 32 --repeat 3 --read-bandwidth
    done
    ;;
  tc)
    for b in 1 4 16; do
      for rows in 1 0; do
        bench "b$b tc-from-rows=$rows" KIMI_CUDA_TC_FROM_ROWS=$rows -- --mode decode --batch $b --prompt-tokens 512 --decode-tokens 32 --repeat 3 --read-bandwidth
      done
    done
    bench "b64" -- --mode decode --batch 64 --prompt-tokens 512 --decode-tokens 32 --repeat 3 --read-bandwidth
    ;;
  prefill)
    bench "tc-from-rows=4" -- --mode prefill --batch 1 --prompt-tokens 512 --repeat 3
    bench "tc-from-rows=0" KIMI_CUDA_TC_FROM_ROWS=0 -- --mode prefill --batch 1 --prompt-tokens 512 --repeat 3
    ;;
  overlap)
    for b in 1 16; do
      for o in 1 0; do
        bench "b$b overlap=$o" KIMI_CUDA_OVERLAP=$o -- --mode decode --batch $b --prompt-tokens 512 --decode-tokens 32 --repeat 3 --read-bandwidth
      done
    done
    for o in 1 0; do
      bench "prefill overlap=$o" KIMI_CUDA_OVERLAP=$o -- --mode prefill --batch 1 --prompt-tokens 512 --repeat 3
    done
    ;;
  long)
    bench "16k" -- --mode both --batch 1 --prompt-tokens 16384 --decode-tokens 32 --repeat 1
    ;;
esac
