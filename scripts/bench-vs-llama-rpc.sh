#!/usr/bin/env bash
# One model split over several processes on 127.0.0.1, troupe against llama.cpp's RPC backend, in
# alternating runs: troupe bench through one caf-node per layer range, and llama-bench holding the
# first range itself with one ggml-rpc-server per further range. Prefill of a PROMPT-token prompt
# and decode of TOKENS tokens after it, as scripts/bench-vs-llama-cpp.sh measures one process.
#   [ROUNDS=3] [THREADS=2] [PROMPT=128] [TOKENS=32] [LAYERS=0-11,12-21,22-31] [LLAMA_CPP_BIN=dir] \
#     scripts/bench-vs-llama-rpc.sh MODEL
# LAYERS: the inclusive layer range of each process (troupe's --layers; the default is a 7B model
# over 3 processes). llama.cpp gets the same split: -ngl leaves the first range in llama-bench and
# -ts gives each server its layers, the last one also the output layer, as troupe's last node.
# Every process computes with THREADS threads. llama.cpp is built once if needed (lib/llama-cpp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: scripts/bench-vs-llama-rpc.sh MODEL" >&2; exit 2; }
rounds="${ROUNDS:-3}" threads="${THREADS:-2}" prompt="${PROMPT:-128}" tokens="${TOKENS:-32}"
layers="${LAYERS:-0-11,12-21,22-31}"

. scripts/lib/llama-cpp.sh
bin="$(llama_cpp_bin)"
. scripts/lib/bench-nodes.sh
model="$(bench_model "$1")"

# The ranges' sizes, and llama.cpp's flags for them: -ngl counts the offloaded layers plus the
# output layer; -ts splits them over the servers in order.
IFS=, read -r -a ranges <<< "$layers"
[ ${#ranges[@]} -ge 2 ] || { echo "LAYERS needs two ranges or more, not '$layers'" >&2; exit 2; }
sizes=()
for range in "${ranges[@]}"; do sizes+=($(( ${range#*-} - ${range%-*} + 1 ))); done
ngl=1 ts=""
for i in $(seq 1 $(( ${#sizes[@]} - 1 ))); do
  size=${sizes[$i]}
  [ "$i" -eq $(( ${#sizes[@]} - 1 )) ] && size=$((size + 1))
  ngl=$((ngl + sizes[$i])); ts="${ts:+$ts/}$size"
done

# The processes, started once: troupe's nodes (not re-measuring their speed while idle) and
# llama.cpp's servers on free ports.
NODE_THREADS="$threads"
endpoints="" servers=""
for i in "${!ranges[@]}"; do
  start_node "node$i" -- --reprobe-idle 0
done
for i in "${!ranges[@]}"; do endpoints="${endpoints:+$endpoints,}$(node_endpoint "node$i")"; done
for i in $(seq 1 $(( ${#ranges[@]} - 1 ))); do
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$bin/ggml-rpc-server" -H 127.0.0.1 -p "$port" -t "$threads" > "$work/rpc$i.log" 2>&1 &
  pids+=("$!")
  servers="${servers:+$servers,}127.0.0.1:$port"
done
for server in ${servers//,/ }; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${server%:*}/${server#*:}") 2>/dev/null && break; sleep 0.1; done
done
echo "troupe: caf-nodes $endpoints, --layers $layers; llama.cpp: -ngl $ngl -ts $ts --rpc $servers; $threads threads each" >&2

run_llama_cpp() {  # round -> $work/llama.<round>.json: {"prefill": tok/s, "decode": ms/token}
  llama_bench_run "$bin/llama-bench" "$prompt" "$tokens" "$work/llama.$1.json" -m "$model" -t "$threads" \
    --rpc "$servers" -ngl "$ngl" -ts "$ts"
}
run_troupe() {  # round -> the same, from troupe bench
  build/bin/troupe bench --model "$model" --nodes "$endpoints" --layers "$layers" --prompt-tokens "$prompt" \
    -n "$tokens" --json "$work/troupe.json" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))
json.dump({'prefill': r['prefill_tokens_per_s'], 'decode': r['decode_ms_per_token']}, open(sys.argv[2], 'w'))" \
    "$work/troupe.json" "$work/troupe.$1.json"
}
for r in $(seq "$rounds"); do
  # Alternate which program runs first, so neither always starts on a machine the other warmed.
  if [ $((r % 2)) -eq 1 ]; then order="llama troupe"; else order="troupe llama"; fi
  for who in $order; do
    if [ "$who" = llama ]; then run_llama_cpp "$r"; else run_troupe "$r"; fi
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"round $r $who: prefill {r['prefill']:.1f} tok/s, decode {r['decode']:.1f} ms/token\")" "$work/$who.$r.json"
  done
done
python3 - "$work" "$(basename "$model")" "${#ranges[@]}" <<'PY'
import glob, json, os, statistics, sys
work, name, n = sys.argv[1], sys.argv[2], sys.argv[3]
def runs(who): return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(work, f"{who}.*.json")))]
l, t = runs("llama"), runs("troupe")
lp, tp = [r["prefill"] for r in l], [r["prefill"] for r in t]
ld, td = [r["decode"] for r in l], [r["decode"] for r in t]
print(f"{name}, {n} processes on 127.0.0.1")
print(f"prefill tok/s (max / median): llama.cpp RPC {max(lp):.1f} / {statistics.median(lp):.1f}, troupe {max(tp):.1f} / "
      f"{statistics.median(tp):.1f}, ratio {max(tp)/max(lp):.2f} / {statistics.median(tp)/statistics.median(lp):.2f}")
print(f"decode ms/token (min / median): llama.cpp RPC {min(ld):.1f} / {statistics.median(ld):.1f}, troupe {min(td):.1f} / "
      f"{statistics.median(td):.1f}, ratio {min(ld)/min(td):.2f} / {statistics.median(ld)/statistics.median(td):.2f}")
print("ratio: troupe's speed over llama.cpp's (above 1: troupe is faster)")
PY
