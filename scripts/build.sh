#!/usr/bin/env bash
# Configures and builds troupe in ./build (Release, Ninja). Two parallel jobs: each
# LibTorch translation unit takes about 1 GB of memory to compile.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j "${TROUPE_BUILD_JOBS:-2}"
