# Sourced by the device-*.sh scripts on the GPU machine (repository root, .device carried): the carried JRE unpacked
# once, the java command, the classpaths of this build (NEW_CP) and of device-prepare-base.sh's jar (BASE_CP: its
# model-cuda jar in place of this build's), and m48_model.
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
JAVA=(/tmp/jre/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=/tmp -Xss4m)
NEW_CP="$(ls .device/lib/*.jar | grep -v junit-platform-console | paste -sd:)"
BASE_CP="$( (ls .device/base/*.jar 2>/dev/null; ls .device/lib/*.jar | grep -v junit-platform-console | grep -v '/model-cuda-') | paste -sd:)"

# m48_model [LAYERS]: the folder of the kimi-linear-48b preset with its first LAYERS (8) layers, random weights, made
# first if missing (in /dev/shm where there is one: RAM, no disk writes; ~60 s and 26 GB for 8 layers). Progress on stderr.
m48_model() {
  local layers="${1:-8}"
  local model="/tmp/m48-$layers"
  [[ -d /dev/shm ]] && model="/dev/shm/m48-$layers"
  if [[ ! -f $model/config.json ]]; then
    local start
    start=$(date +%s)
    "${JAVA[@]}" -cp "$NEW_CP" dev.kimiserve.cli.KimiCli make-model --preset kimi-linear-48b --layers "$layers" --out "$model" 2>&1 | tail -1 >&2
    echo "make-model: $(( $(date +%s) - start )) s, $(du -sh "$model" | cut -f1)" >&2
  fi
  echo "$model"
}
