#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (GoogleTest through ctest).
# Tests read the real model files from ../shared/models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 --timeout 900
# Bounded fuzzing when clang with libFuzzer is present: 5 targets x 30 s = 150 s (plus their
# build). TROUPE_FUZZ=0 skips it; FUZZ_SECONDS changes the time per target.
if [ "${TROUPE_FUZZ:-1}" != 0 ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}" scripts/fuzz.sh
fi
