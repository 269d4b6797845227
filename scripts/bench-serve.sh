#!/usr/bin/env bash
# Serving benchmark: aggregate tokens/s and per-request latency for 1, 2, 4 and 8
# concurrent requests through `troupe serve` on a 3-stage pipeline of local caf-nodes.
#   [MAX_BATCH=16] [LAYERS=0-1,2-3,4-5] scripts/bench-serve.sh [MODEL] [MAX_TOKENS]
# MODEL defaults to a synthetic TinyLlama-shaped Q4_0 model cut to 6 layers (made once in
# build/). MAX_BATCH=1 turns batching off (pipelining only), to see what batching adds.
# Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-build/bench-tinyllama6-q4_0.gguf}"
max_tokens="${2:-48}"
max_batch="${MAX_BATCH:-16}"
layers="${LAYERS:-0-1,2-3,4-5}"  # fixed, so runs compare (the planner's split follows noisy speed measurements)
[ -f "$model" ] || build/bin/troupe synth --shape tinyllama --layers 6 --type q4_0 --out "$model"
model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
nodes=""
for port in 7201 7202 7203; do
  rm -f "build/bench-node-$port.port"
  build/bin/caf-node --port "$port" --models / --threads 1 --port-file "build/bench-node-$port.port" 2>/dev/null &
  pids+=($!)
  nodes="${nodes:+$nodes,}127.0.0.1:$port"
done
for port in 7201 7202 7203; do for _ in $(seq 200); do [ -s "build/bench-node-$port.port" ] && break; sleep 0.1; done; done
rm -f build/bench-serve.port
build/bin/troupe serve --model "$model" --nodes "$nodes" --layers "$layers" --port 0 --port-file build/bench-serve.port \
  --max-in-flight 8 --max-queue 8 --threads 1 --max-batch "$max_batch" 2>build/bench-serve.log &
pids+=($!)
for _ in $(seq 300); do [ -s build/bench-serve.port ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat build/bench-serve.port)/v1/completions"

one_request() {  # prints "seconds completion_tokens"
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$(curl -s "$url" -d "{\"prompt\": \"Request $1 says hello\", \"max_tokens\": $max_tokens, \"temperature\": 0.7, \"seed\": $1}")
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$out" | grep -o '"completion_tokens":[0-9]*' | cut -d: -f2)"
}
export -f one_request; export url max_tokens

one_request 0 >/dev/null  # warm up
echo "max batch $max_batch"
printf "%-12s %-14s %-18s %-16s\n" concurrent "tokens/s" "mean latency s" "speed-up vs 1"
base=""
for c in 1 2 4 8; do
  t0=$(date +%s.%N)
  results=$(seq 1 "$c" | xargs -P "$c" -I{} bash -c 'one_request {}')
  t1=$(date +%s.%N)
  wall=$(echo "$t1 - $t0" | bc -l)
  tokens=$(echo "$results" | awk '{s += $2} END {print s}')
  latency=$(echo "$results" | awk '{s += $1} END {print s / NR}')
  rate=$(echo "$tokens / $wall" | bc -l)
  [ -n "$base" ] || base=$rate
  printf "%-12s %-14.1f %-18.2f %-16.2f\n" "$c" "$rate" "$latency" "$(echo "$rate / $base" | bc -l)"
done
# Sessions per forward pass at each stage over the whole run.
curl -s "${url%/v1/completions}/metrics" | awk '
  /^troupe_stage_steps_total\{/ { split($0, a, "layers=\""); split(a[2], b, "\""); steps[b[1]] = $NF }
  /^troupe_stage_forward_passes_total\{/ { split($0, a, "layers=\""); split(a[2], b, "\""); passes[b[1]] = $NF }
  END { for (l in steps) printf "stage %-22s %6d steps in %6d passes (%.2f sessions per pass)\n", l, steps[l], passes[l], steps[l] / passes[l] }' | sort
