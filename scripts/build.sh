#!/usr/bin/env bash
# Configures and builds troupe in ./build (Release, Ninja). Two parallel jobs: each
# LibTorch translation unit takes about 1 GB of memory to compile. ccache, where installed,
# is shared by every checkout beside this one (paths are taken relative to the build dir).
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
if command -v ccache > /dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$(cd .. && pwd)" CCACHE_NOHASHDIR=true
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j "${TROUPE_BUILD_JOBS:-2}"
