#!/usr/bin/env bash
# What Wi-Fi-like links cost: decode ms/token of a 3-node stories260K pipeline on loopback
# nodes vs nodes in network namespaces behind 30 Mbit/s links with 1 % loss each way and a
# delaying relay (10 ms and 40 ms RTT with jitter), and what a 3 s outage of one link costs a
# 100-token generation at 10 ms RTT (extra wall time, and the longest wait between two tokens).
# Runs tests/test_wifi_links' disabled Bench test ROUNDS times, alternating the order of the
# configurations, and prints min and median (the machine is shared: compare those).
#   [ROUNDS=5] scripts/bench-links.sh        (needs root for the namespaces; build test_wifi_links first)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
bin=build/tests/test_wifi_links
[ -x "$bin" ] || { echo "build it first: cmake --build build --target test_wifi_links caf-node" >&2; exit 1; }
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  TROUPE_BENCH_ROUND="$r" "$bin" --gtest_also_run_disabled_tests --gtest_filter='WifiLinksOwnLan.DISABLED_Bench' \
    > "$out.round" 2>&1 || { cat "$out.round" >&2; exit 1; }
  grep '^\[ bench \]' "$out.round" | tee -a "$out" | sed "s/^/round $r: /"
done
rm -f "$out.round"
python3 - "$out" <<'PY'
import collections, statistics, sys
values = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, value = line.split()[-2:]
    values.setdefault(name, []).append(float(value))
for name, v in values.items():
    print(f"{name:28s} min {min(v):9.2f}  median {statistics.median(v):9.2f}  ({len(v)} runs)")
PY
