#!/usr/bin/env bash
# Speculative decoding over loopback caf-nodes: decode tokens/s and acceptance of plain decoding,
# prompt lookup (--speculate 4) and a draft model (--draft; default the model itself, the upper
# bound of acceptance), greedy, ROUNDS rounds alternating the order; prints min and median.
#   [ROUNDS=5] [NODES=3] [TOKENS=200] scripts/bench-speculative.sh [MODEL] [DRAFT]
# Everything runs on 127.0.0.1 (1 thread per node) and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-../shared/models/stories260K/stories260K.gguf}"
draft="${2:-$model}"
rounds="${ROUNDS:-5}"
n_nodes="${NODES:-3}"
tokens="${TOKENS:-200}"
prompt="${PROMPT:-Once upon a time, there was a little girl named Lily. She loved to play outside.}"
# The nodes serve from / (--models /): give them absolute paths.
model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"
draft="$(cd "$(dirname "$draft")" && pwd)/$(basename "$draft")"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
nodes=""
for i in $(seq "$n_nodes"); do
  rm -f "build/bench-spec-$i.port"
  build/bin/caf-node --port 0 --models / --threads 1 --port-file "build/bench-spec-$i.port" 2>/dev/null &
  pids+=($!)
done
for i in $(seq "$n_nodes"); do
  for _ in $(seq 300); do [ -s "build/bench-spec-$i.port" ] && break; sleep 0.1; done
  nodes="${nodes:+$nodes,}127.0.0.1:$(cat "build/bench-spec-$i.port")"
done
out="$(mktemp)"
run() {  # name, extra flags...
  local name="$1"; shift
  local log
  log="$(build/bin/troupe generate -m "$model" -p "$prompt" -n "$tokens" --temp 0 --threads 1 --nodes "$nodes" "$@" \
         2>&1 >/dev/null)" || { echo "$log" >&2; exit 1; }
  local ms kept
  ms="$(sed -n 's/.*decode: [0-9]* tokens, \([0-9.]*\) ms\/token.*/\1/p' <<< "$log")"
  kept="$(sed -n 's/.*speculative: .*(\([0-9]*\)%).*/\1/p' <<< "$log")"
  echo "$name tokens_per_s $(python3 -c "print(f'{1000/$ms:.1f}')")" >> "$out"
  [ -n "$kept" ] && echo "$name acceptance_pct $kept" >> "$out"
  echo "$name: $ms ms/token${kept:+, $kept% of drafts kept}"
}
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order=(plain lookup draft); else order=(draft lookup plain); fi
  for c in "${order[@]}"; do
    case "$c" in
      plain) run plain ;;
      lookup) run prompt-lookup --speculate 4 ;;
      draft) run draft-model --draft "$draft" --speculate 4 ;;
    esac
  done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
values = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, key, value = line.split()
    values.setdefault((name, key), []).append(float(value))
for (name, key), v in values.items():
    print(f"{name:14s} {key:16s} min {min(v):8.1f}  median {statistics.median(v):8.1f}  max {max(v):8.1f}  ({len(v)} runs)")
PY
rm -f "$out"
