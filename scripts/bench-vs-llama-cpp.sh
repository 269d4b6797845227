#!/usr/bin/env bash
# troupe bench against llama.cpp's llama-bench on the same GGUF files, same threads, in alternating
# runs (the machine is shared: compare max / median), prefill of a PROMPT-token prompt and decode
# of TOKENS tokens after it (llama-bench -d PROMPT: the same context depth troupe decodes at).
#   [ROUNDS=3] [THREADS=2] [PROMPT=128] [TOKENS=32] [LLAMA_BENCH=path] scripts/bench-vs-llama-cpp.sh MODEL...
# Without LLAMA_BENCH (or LLAMA_CPP_BIN, its directory), llama.cpp is built once: see
# scripts/lib/llama-cpp.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/bench-vs-llama-cpp.sh MODEL..." >&2; exit 2; }
rounds="${ROUNDS:-3}" threads="${THREADS:-2}" prompt="${PROMPT:-128}" tokens="${TOKENS:-32}"

. scripts/lib/llama-cpp.sh
LLAMA_BENCH="${LLAMA_BENCH:-$(llama_cpp_bin)/llama-bench}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run_llama_cpp() {  # model, out -> out: {"prefill": tok/s, "decode": ms/token}
  llama_bench_run "$LLAMA_BENCH" "$prompt" "$tokens" "$2" -m "$1" -t "$threads"
}
run_troupe() {  # model, out -> the same, from troupe bench
  build/bin/troupe bench --model "$1" --threads "$threads" --prompt-tokens "$prompt" -n "$tokens" \
    --json "$work/troupe.json" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))
json.dump({'prefill': r['prefill_tokens_per_s'], 'decode': r['decode_ms_per_token'], 'bound': r['ratio_to_bound']}, open(sys.argv[2], 'w'))" \
    "$work/troupe.json" "$2"
}
for r in $(seq "$rounds"); do
  for m in "$@"; do
    # Alternate which program runs first, so neither always starts on a machine the other warmed.
    if [ $((r % 2)) -eq 1 ]; then order="llama troupe"; else order="troupe llama"; fi
    for who in $order; do
      out="$work/$(basename "$m").$who.$r.json"
      if [ "$who" = llama ]; then run_llama_cpp "$m" "$out"; else run_troupe "$m" "$out"; fi
      python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"round $r $(basename "$m") $who: prefill {r['prefill']:.1f} tok/s, decode {r['decode']:.2f} ms/token\")" "$out"
    done
  done
done
python3 - "$work" "$@" <<'PY'
import glob, json, os, statistics, sys
work, models = sys.argv[1], sys.argv[2:]
def runs(m, who):
    return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(work, f"{os.path.basename(m)}.{who}.*.json")))]
print(f"{'model':22} {'prefill tok/s (max / median)':>44} {'decode ms/token (min / median)':>44}")
print(f"{'':22} {'llama.cpp':>14} {'troupe':>14} {'ratio':>14} {'llama.cpp':>14} {'troupe':>14} {'ratio':>14}   troupe x bound")
for m in models:
    l, t = runs(m, "llama"), runs(m, "troupe")
    lp, tp = [r["prefill"] for r in l], [r["prefill"] for r in t]
    ld, td = [r["decode"] for r in l], [r["decode"] for r in t]
    print(f"{os.path.basename(m):22} {max(lp):6.1f} /{statistics.median(lp):6.1f} {max(tp):6.1f} /{statistics.median(tp):6.1f}"
          f" {max(tp)/max(lp):6.2f} /{statistics.median(tp)/statistics.median(lp):6.2f}"
          f" {min(ld):6.1f} /{statistics.median(ld):6.1f} {min(td):6.1f} /{statistics.median(td):6.1f}"
          f" {min(ld)/min(td):6.2f} /{statistics.median(ld)/statistics.median(td):6.2f}"
          f"   {min(r['bound'] for r in t):.2f}")
print("ratio: troupe's speed over llama.cpp's (above 1: troupe is faster), for prefill and decode alike")
PY
