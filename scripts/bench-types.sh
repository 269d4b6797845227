#!/usr/bin/env bash
# Prefill and decode speed of several models (block types) in one process, in alternating runs
# (the machine is shared: compare min and median), with each decode's ratio to the memory-bandwidth
# bound measured in the same run and the time per MB of weights read (to compare types per byte).
#   [ROUNDS=3] [THREADS=2] [PROMPT=64] [TOKENS=32] scripts/bench-types.sh MODEL...
# Models: e.g. `troupe synth --shape tinyllama --type q4_k_m -o /tmp/tl-q4_k_m.gguf`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/bench-types.sh MODEL..." >&2; exit 2; }
rounds="${ROUNDS:-3}" threads="${THREADS:-2}" prompt="${PROMPT:-64}" tokens="${TOKENS:-32}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for r in $(seq "$rounds"); do
  # Alternate the order each round so that no model always runs first (or after the same one).
  if [ $((r % 2)) -eq 1 ]; then order=("$@"); else order=(); for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done; fi
  for m in "${order[@]}"; do
    out="$work/$(basename "$m").$r.json"
    build/bin/troupe bench --model "$m" --threads "$threads" --prompt-tokens "$prompt" -n "$tokens" --json "$out" \
      > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"round $r {sys.argv[2]}: prefill {r['prefill_tokens_per_s']:.1f} tok/s, decode {r['decode_ms_per_token']:.2f} ms/token, {r['ratio_to_bound']:.2f}x bound ({r['memory_read_gb_per_s']:.1f} GB/s)\")" "$out" "$(basename "$m")"
  done
done
python3 - "$work" "$@" <<'PY'
import glob, json, os, statistics, sys
work, models = sys.argv[1], sys.argv[2:]
print(f"{'model':28} {'MB/token':>9} {'prefill tok/s':>15} {'decode ms/token':>16} {'x bound':>11} {'ms per GB read':>15}")
print(f"{'':28} {'':>9} {'max / median':>15} {'min / median':>16} {'min / med':>11} {'min / median':>15}")
for m in models:
    runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(work, os.path.basename(m) + ".*.json")))]
    pf = [r["prefill_tokens_per_s"] for r in runs]
    dm = [r["decode_ms_per_token"] for r in runs]
    rb = [r["ratio_to_bound"] for r in runs]
    gb = runs[0]["weight_bytes_per_token"] / 1e9
    per = [d / gb for d in dm]
    print(f"{os.path.basename(m):28} {gb*1e3:9.1f} {max(pf):7.1f} /{statistics.median(pf):6.1f} "
          f"{min(dm):8.2f} /{statistics.median(dm):6.2f} {min(rb):5.2f} /{statistics.median(rb):4.2f} "
          f"{min(per):7.1f} /{statistics.median(per):6.1f}")
PY
