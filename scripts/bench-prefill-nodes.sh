#!/usr/bin/env bash
# Time to first token of a long prompt: one process with one thread against two caf-nodes on
# 127.0.0.1, each pinned to its own core with one thread, the prompt flowing through them in
# chunks (--prefill-chunk) and in one pass (--prefill-chunk 0). Alternating runs; min / median.
#   [ROUNDS=3] [PROMPT=256] [CHUNK=32] [LAYERS=0-10,11-21] scripts/bench-prefill-nodes.sh [MODEL]
# CHUNK may list several sizes (CHUNK="16 32"): each is timed in every round.
# MODEL defaults to a TinyLlama-shaped Q4_0 synth (made once in build/; scripts/lib/bench-nodes.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}" prompt="${PROMPT:-256}" chunks="${CHUNK:-32}" layers="${LAYERS:-0-10,11-21}"
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
# Each round's times go to $work/times as lines "what ms".
for r in $(seq "$rounds"); do
  line="round $r:"
  t="$(run one taskset -c 0 build/bin/troupe bench)"; echo "one $t" >> "$work/times"; line+=" 1 process $t ms,"
  for c in $chunks; do
    t="$(run chunked build/bin/troupe bench --nodes "$nodes" --layers "$layers" --prefill-chunk "$c")"
    echo "chunks-of-$c $t" >> "$work/times"; line+=" 2 nodes in chunks of $c $t ms,"
  done
  t="$(run whole build/bin/troupe bench --nodes "$nodes" --layers "$layers" --prefill-chunk 0)"
  echo "one-pass $t" >> "$work/times"; echo "$line 2 nodes in one pass $t ms"
done
python3 - "$work/times" "$prompt" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    what, ms = line.split()
    times[what].append(float(ms))
one_ms = times.pop("one")
one = statistics.median(one_ms)
print(f"time to first token, {sys.argv[2]}-token prompt (min / median ms):")
print(f"  {'1 process, 1 thread':28} {min(one_ms):8.1f} / {one:8.1f}")
for what, ms in times.items():
    label = "2 nodes, " + what.replace("-", " ")
    print(f"  {label:28} {min(ms):8.1f} / {statistics.median(ms):8.1f}   {one / statistics.median(ms):.2f}x faster")
PY
