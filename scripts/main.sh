#!/usr/bin/env bash
# Builds the examples in build/ (tests off, to be quick) and runs the upstream diagnostics:
#   scripts/main.sh [arguments for upstream_diagnostics]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGAUGE_ATTN_BUILD_EXAMPLES=ON -DGAUGE_ATTN_BUILD_TESTS=OFF \
  -DGAUGE_ATTN_BUILD_BENCHMARKS=OFF

if [ ! -f examples/upstream_diagnostics.cpp ]; then
  cmake --build build -j 2
  echo "main.sh: examples/upstream_diagnostics.cpp does not exist yet; built the examples that exist, ran nothing" >&2
  exit 0
fi
cmake --build build -j 2 --target upstream_diagnostics
exec ./build/examples/upstream_diagnostics "$@"
