#!/usr/bin/env bash
# The README's main job: builds gauge_attn_study alone in build/ (examples and tools on, tests and
# benchmarks off) and runs it on its built-in default, the attention-uniformity study on synthetic
# beliefs calibrated to the upstream note: the per-spec report, the analysis and the verdict on
# stdout; every number (CSV, study.json), the verdict, the heatmaps and the charts in out/study/.
#   scripts/main.sh [arguments for gauge_attn_study instead of the default --out out/study]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --system-only  # the study needs no Python
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGAUGE_ATTN_BUILD_EXAMPLES=ON -DGAUGE_ATTN_BUILD_TESTS=OFF \
  -DGAUGE_ATTN_BUILD_BENCHMARKS=OFF
cmake --build build -j 2 --target gauge_attn_study
if [ $# -eq 0 ]; then
  set -- --out out/study
fi
exec ./build/tools/gauge_attn_study "$@"
