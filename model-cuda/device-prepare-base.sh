#!/usr/bin/env bash
# Builds another revision's model-cuda jar into .device/base, for device-compare.sh (run device-prepare.sh as well).
#   model-cuda/device-prepare-base.sh REV
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rev="${1:?usage: device-prepare-base.sh REV}"
tree="$(mktemp -d)/base"
git -C "$here" worktree add -q --detach "$tree" "$rev"
trap 'git -C "$here" worktree remove --force "$tree"' EXIT
(cd "$tree" && JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}" ./mvnw -q -o -pl model-cuda package -DskipTests)
rm -rf "$here/.device/base" && mkdir -p "$here/.device/base"
cp "$tree"/model-cuda/target/model-cuda-*[0-9T].jar "$here/.device/base/"
echo "$rev" > "$here/.device/base/REVISION"
ls -la "$here/.device/base"
