#!/usr/bin/env bash
# The main job on one machine: install, build, start three caf-node daemons on
# 127.0.0.1, generate with the default model (stories260K from ../shared/models) split
# across them (layers 0-1, 2-3, 4), then stop the daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

models="$(cd ../shared/models && pwd)"
model="$models/stories260K/stories260K.gguf"
ports=(7101 7102 7103)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for port in "${ports[@]}"; do
  rm -f "build/node-$port.port"
  build/bin/caf-node --port "$port" --models "$models" --port-file "build/node-$port.port" 2>"build/node-$port.log" &
  pids+=($!)
done
for port in "${ports[@]}"; do   # wait until each daemon listens (at most 20 s)
  for _ in $(seq 200); do [ -s "build/node-$port.port" ] && break; sleep 0.1; done
  [ -s "build/node-$port.port" ] || { echo "caf-node on port $port did not start:"; cat "build/node-$port.log"; exit 1; }
done

nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
echo "troupe generate --nodes $nodes --layers 0-1,2-3,4-4 --model $model --prompt 'Once upon a time'" >&2
build/bin/troupe generate --nodes "$nodes" --layers 0-1,2-3,4-4 --model "$model" --prompt "Once upon a time" -n 100 --temp 0
