#!/usr/bin/env bash
# What TLS costs: decode ms/token of a 3-node pipeline of local caf-nodes, with and without a
# cluster key, in alternating runs (the machine is shared, so compare min and median).
#   [ROUNDS=5] [TOKENS=32] [LAYERS=0-7,8-15,16-21] scripts/bench-tls.sh [MODEL]
# MODEL defaults to a synthetic TinyLlama-shaped Q4_0 model (made once in build/).
# Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
tokens="${TOKENS:-32}"
layers="${LAYERS:-0-7,8-15,16-21}"
. scripts/lib/bench-nodes.sh
model="$(bench_model "${1:-build/bench-tinyllama-q4_0.gguf}")"
build/bin/troupe keys init --out "$work/cluster.pem" > /dev/null

# run_once plain|tls: prints the decode ms/token of one bench run on three fresh nodes.
run_once() {
  local mode="$1" key=() nodes=""
  [ "$mode" = tls ] && key=(--cluster-key "$work/cluster.pem")
  local started=()
  for i in 0 1 2; do
    start_node "node-$mode-$i" -- "${key[@]}"
    started+=("$last_pid")
  done
  for i in 0 1 2; do nodes="${nodes:+$nodes,}$(node_endpoint "node-$mode-$i")"; done
  build/bin/troupe bench --model "$model" --nodes "$nodes" --layers "$layers" -n "$tokens" --threads 1 \
    --json "$work/$mode.json" "${key[@]}" > /dev/null 2>"$work/bench-$mode.log" || { cat "$work/bench-$mode.log" >&2; exit 1; }
  for pid in "${started[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['decode_ms_per_token'])" "$work/$mode.json"
}

plain=() tls=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then plain+=("$(run_once plain)"); tls+=("$(run_once tls)")
  else tls+=("$(run_once tls)"); plain+=("$(run_once plain)"); fi
  echo "round $r: plain ${plain[-1]} ms/token, tls ${tls[-1]} ms/token"
done
python3 - "${plain[*]}" "${tls[*]}" <<'PY'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
t = [float(x) for x in sys.argv[2].split()]
print(f"plain: min {min(p):.2f} median {statistics.median(p):.2f} ms/token")
print(f"tls:   min {min(t):.2f} median {statistics.median(t):.2f} ms/token")
print(f"tls cost: min {100*(min(t)/min(p)-1):+.1f}%  median {100*(statistics.median(t)/statistics.median(p)-1):+.1f}%")
PY
