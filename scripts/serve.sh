#!/usr/bin/env bash
# Installs what is missing, builds wsk in Release, and starts `wsk serve`
# (extra arguments are passed on: scripts/serve.sh --echo --listen 127.0.0.1:9001).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSK_BUILD_TESTS=OFF >/dev/null
cmake --build build/release --target wsk
exec build/release/wsk serve "$@"
