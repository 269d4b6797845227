#!/usr/bin/env bash
# Installs everything troupe needs on a fresh Debian bookworm machine (the list is in
# scripts/apt-packages.txt) and selects OpenBLAS (OpenMP build) as the system BLAS:
# Debian's LibTorch links the generic libblas.so.3, and with the reference BLAS fp32
# matmul is about 3x slower. Installs the npm packages of the web tests (tests/web). Does
# nothing that is already done.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# A line is "package" or "package command": the second form counts as present when the
# command is already on PATH (NodeSource's nodejs bundles npm and conflicts with Debian's npm).
missing=()
while read -r p cmd; do
  [ -z "$p" ] && continue
  if [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done < <(grep -v '^#' "$here/apt-packages.txt" | sed '/^\s*$/d')
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Select OpenBLAS (OpenMP) for every BLAS/LAPACK alternative LibTorch may resolve.
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine)"
libdir="/usr/lib/$multiarch"
for name in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target="$libdir/openblas-openmp/$name"
  [ -e "$target" ] || continue
  if [ "$(readlink -f "$libdir/$name")" != "$(readlink -f "$target")" ]; then
    $SUDO update-alternatives --set "$name-$multiarch" "$target"
  fi
done

# npm packages of the browser and SDK tests (tests/web/package-lock.json), into tests/web/node_modules.
web="$here/../tests/web"
if [ ! -d "$web/node_modules/openai" ] || [ ! -d "$web/node_modules/playwright-core" ]; then
  echo "install-deps: npm ci in tests/web"
  (cd "$web" && npm ci --no-audit --no-fund)
fi
echo "install-deps: ready"
