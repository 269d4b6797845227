#!/usr/bin/env bash
# Installs everything troupe needs on a fresh Debian bookworm machine, and selects
# OpenBLAS (OpenMP build) as the system BLAS: Debian's LibTorch links the generic
# libblas.so.3, and with the reference BLAS fp32 matmul is about 3x slower.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev                 # actors and their network layer (CAF 0.17)
  libtorch-dev               # tensor compute (LibTorch 1.13)
  libopenblas0-openmp        # fast BLAS for LibTorch
  libcereal-dev              # tensor wire format
  libspdlog-dev libfmt-dev   # logging
  libgtest-dev               # tests
  libsentencepiece-dev       # tokenizer.model files of Hugging Face LLaMA checkpoints
  nlohmann-json3-dev         # config.json, safetensors headers, HTTP API
  libcpp-httplib-dev         # OpenAI-compatible HTTP server
  libcli11-dev               # command line parsing
  libpcre2-dev               # GPT-2 pre-tokenizer regex (Unicode classes, look-ahead)
  curl procps iproute2       # used by the multi-node tests
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

# Select OpenBLAS (OpenMP) for every BLAS/LAPACK alternative LibTorch may resolve.
arch_dir="/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
for name in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target="$arch_dir/openblas-openmp/$name"
  link="$arch_dir/$name"
  alt="$name-$(basename "$arch_dir")"
  if [ -e "$target" ]; then
    $SUDO update-alternatives --set "$alt" "$target" >/dev/null 2>&1 || \
      $SUDO update-alternatives --install "$link" "$alt" "$target" 200
  fi
done
echo "install-deps: done"
