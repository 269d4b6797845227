#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (GoogleTest through ctest).
# Tests read the real model files from ../shared/models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 --timeout 900
