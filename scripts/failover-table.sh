#!/usr/bin/env bash
# The numbers of the failure table in docs/architecture.md ("Supervision and failover"): runs
# the failover tests on loopback (test_failover) and over Wi-Fi-like links (test_wifi_links,
# needs root for its network namespaces) and prints, for each failure, when it was detected,
# how long the repair took, the positions replayed and the longest wait between two tokens a
# client saw. The machine is shared: run it more than once and read the spread.
#   scripts/failover-table.sh        (build test_failover, test_wifi_links, caf-node and troupe first)
set -euo pipefail
cd "$(dirname "$0")/.."
for bin in build/tests/test_failover build/tests/test_wifi_links; do
  [ -x "$bin" ] || { echo "build it first: cmake --build build --target $(basename "$bin") caf-node troupe" >&2; exit 1; }
done
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
build/tests/test_failover --gtest_filter='*SurvivorsTakeOver.*:Failover.NodeRestarted*:Failover.StageStuck*' > "$out" 2>&1 ||
  { cat "$out" >&2; exit 1; }
grep -E '^\[ failover \]' "$out"
build/tests/test_wifi_links > "$out" 2>&1 || { cat "$out" >&2; exit 1; }
grep -E '^\[ wifi \]' "$out"
