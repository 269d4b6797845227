#!/usr/bin/env bash
# The main job: install, build, and generate with the default model (stories260K from
# ../shared/models).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model="../shared/models/stories260K/stories260K.gguf"
build/bin/troupe generate --model "$model" --prompt "Once upon a time" -n 100 --temp 0
