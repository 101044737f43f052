#!/usr/bin/env bash
# Installs what is missing, builds wsk in Release, and starts `wsk serve`
# (extra arguments are passed on: scripts/serve.sh --echo --listen 127.0.0.1:9001).
# The command stays at build/release/wsk; `cmake --install build/release`
# installs it with the library, the man page and the completions.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSK_BUILD_TESTS=OFF \
    -DWSK_BUILD_EXAMPLES=OFF -DWSK_BUILD_BENCH=OFF >/dev/null
# Everything (the command and both libraries), so that cmake --install works.
cmake --build build/release
echo "serve.sh: the command is build/release/wsk (cmake --install build/release installs it)" >&2
exec build/release/wsk serve "$@"
