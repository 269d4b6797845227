#!/usr/bin/env bash
# Time to first token of a long prompt: one process with one thread against two caf-nodes on
# 127.0.0.1, each pinned to its own core with one thread, the prompt flowing through them in
# chunks (--prefill-chunk) and in one pass (--prefill-chunk 0). Alternating runs; min / median.
#   [ROUNDS=3] [PROMPT=256] [CHUNK=32] [LAYERS=0-10,11-21] scripts/bench-prefill-nodes.sh [MODEL]
# MODEL defaults to a TinyLlama-shaped Q4_0 synth (made once in build/; scripts/lib/bench-nodes.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}" prompt="${PROMPT:-256}" chunk="${CHUNK:-32}" layers="${LAYERS:-0-10,11-21}"
. scripts/lib/bench-nodes.sh
model="$(bench_model "${1:-build/bench-tinyllama-q4_0.gguf}")"

nodes=""
for i in 0 1; do start_node "node$i" taskset -c "$i" --; done
for i in 0 1; do nodes="${nodes:+$nodes,}$(node_endpoint "node$i")"; done

# run NAME ARGS...: prints the prefill (time to first token) in ms of one bench run.
run() {
  local name="$1"; shift
  "$@" --model "$model" --prompt-tokens "$prompt" -n 2 --threads 1 --json "$work/$name.json" > /dev/null 2>"$work/$name.err" ||
    { cat "$work/$name.err" >&2; exit 1; }
  python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['prefill_ms'], 1))" "$work/$name.json"
}
one=() chunked=() whole=()
for r in $(seq "$rounds"); do
  one+=("$(run one taskset -c 0 build/bin/troupe bench)")
  chunked+=("$(run chunked build/bin/troupe bench --nodes "$nodes" --layers "$layers" --prefill-chunk "$chunk")")
  whole+=("$(run whole build/bin/troupe bench --nodes "$nodes" --layers "$layers" --prefill-chunk 0)")
  echo "round $r: 1 process ${one[-1]} ms, 2 nodes chunked ${chunked[-1]} ms, 2 nodes one pass ${whole[-1]} ms"
done
python3 - "${one[*]}" "${chunked[*]}" "${whole[*]}" "$prompt" "$chunk" <<'PY'
import statistics, sys
one, chunked, whole = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print(f"time to first token, {sys.argv[4]}-token prompt (min / median ms):")
print(f"  1 process, 1 thread:          {min(one):8.1f} / {statistics.median(one):8.1f}")
print(f"  2 nodes, chunks of {sys.argv[5]:>3}:       {min(chunked):8.1f} / {statistics.median(chunked):8.1f}"
      f"   {statistics.median(one) / statistics.median(chunked):.2f}x faster")
print(f"  2 nodes, one pass:            {min(whole):8.1f} / {statistics.median(whole):8.1f}"
      f"   {statistics.median(one) / statistics.median(whole):.2f}x faster")
PY
