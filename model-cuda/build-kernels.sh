#!/usr/bin/env bash
# Compiles every kernel source (src/main/cuda/*.cu) into a fatbin with PTX for sm_80+ (the driver compiles it for
# the card at load) and machine code for sm_90 (H100/H200), plus a sidecar with the sha256 of the source followed by the
# shared headers (*.cuh, in name order).
#   model-cuda/build-kernels.sh            regenerate the committed files in src/main/resources (after editing a .cu)
#   model-cuda/build-kernels.sh DIR        compile into DIR (the build does this when nvcc is present; a test then
#                                          fails if the committed files differ: stale kernels never pass CI)
#   LINEINFO=1 model-cuda/build-kernels.sh .device/klines
#                                          with source-line info, for SOURCE=1 device-ncu.sh (never commit these)
#   DEFINES="-DNAME=VALUE ..." model-cuda/build-kernels.sh .device/var/NAME
#                                          with macros set (a source's #ifndef defaults), for variant images loaded
#                                          through KIMI_CUDA_KERNELS (never commit these)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/src/main/resources/dev/kimiserve/cuda}"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
flags=(-fatbin -O3 -gencode arch=compute_80,code=compute_80 -gencode arch=compute_90,code=sm_90)
[[ -n "${LINEINFO:-}" ]] && flags+=(-lineinfo)
[[ -n "${DEFINES:-}" ]] && read -ra defines <<< "$DEFINES" && flags+=("${defines[@]}")
mkdir -p "$out"
out="$(cd "$out" && pwd)"                 # absolute: nvcc runs in the sources' folder
shopt -s nullglob
headers=("$here"/src/main/cuda/*.cuh)     # shared by every source: hashed with each (KernelArtifactsTest does the same)
for cu in "$here"/src/main/cuda/*.cu; do
  name="$(basename "$cu" .cu)"
  (cd "$(dirname "$cu")" && "$nvcc" "${flags[@]}" -o "$out/$name.fatbin" "$name.cu")
  echo "$(cat "$cu" "${headers[@]}" | sha256sum | cut -d' ' -f1)  $name.cu" > "$out/$name.fatbin.sha256"
done
