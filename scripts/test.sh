#!/usr/bin/env bash
# Builds and runs the test suite.
#   scripts/test.sh             Release build in build/: CPU tests (ctest -L cpu), then the GPU tests
#                               (ctest -L gpu; they report "skipped" on a machine without a GPU).
#                               CUDA code is compiled whenever nvcc exists: every kernel instantiation
#                               of the GPU tests. Where no GPU is visible (CI) only to compute_90 PTX,
#                               without the CPU-reference programs that compare against them (they could
#                               not run), and without the GPU benchmarks; scripts/gpu_check.sh builds all
#                               of it for sm_90 on the GPU machine. Then the Python package's tests
#                               (pytest python/tests in .venv, which setup.sh keeps up to date; those
#                               marked gpu skip themselves without a GPU).
#   scripts/test.sh --sanitize  ASan+UBSan build in build-asan/ (no CUDA, -O1), CPU tests only (no
#                               Python: the extension is not built with the sanitizers).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=release
case "${1:-}" in
  "") ;;
  --sanitize) mode=sanitize ;;
  *) echo "usage: scripts/test.sh [--sanitize]" >&2; exit 2 ;;
esac

if [ "$mode" = release ]; then
  scripts/setup.sh
else
  scripts/setup.sh --system-only
fi

jobs=2
# Runs a step and prints its time (stderr), so that CI's log shows where its minutes go.
timed() {
  local start=$SECONDS
  "$@"
  echo "test.sh: $1 ${2:-} ${3:-} ... took $((SECONDS - start)) s" >&2
}
ctest_args=(--output-on-failure --no-tests=error -j "$jobs" --timeout 900)
# Ninja where it is installed (setup.sh installs it) and the build directory is new or already
# Ninja's (CMake keeps a build directory's generator): it keeps both cores busy across targets.
generator() {
  if command -v ninja >/dev/null 2>&1 && ! grep -qs '^CMAKE_GENERATOR:INTERNAL=Unix Makefiles' "$1/CMakeCache.txt"; then
    echo -G Ninja
  fi
}

if [ "$mode" = release ]; then
  if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export CUDACXX=/usr/local/cuda/bin/nvcc
  fi
  cuda=OFF
  if [ -n "${CUDACXX:-}" ] || command -v nvcc >/dev/null 2>&1; then
    cuda=ON
  fi
  # Without a GPU the CUDA code is compiled, never run: to PTX (ptxas and its SASS are a third of the
  # CUDA compile) with nvcc's fast-compile level (-Ofc=max: every instantiation still goes through
  # the front end and code generation, with fewer optimisations; forward_runner_Upstream.cu 73 s
  # -> 23 s), and the GPU tests' CPU-reference programs are left out (a fifth of this build).
  gpu=(-DGAUGE_ATTN_BUILD_GPU_TEST_PROGRAMS=OFF -DCMAKE_CUDA_ARCHITECTURES=90-virtual -DCMAKE_CUDA_FLAGS=-Ofc=max)
  if nvidia-smi -L >/dev/null 2>&1; then
    gpu=(-DGAUGE_ATTN_BUILD_GPU_TEST_PROGRAMS=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS=)
  fi
  cmake -S . -B build $(generator build) -DCMAKE_BUILD_TYPE=Release \
    -DGAUGE_ATTN_BUILD_TESTS=ON -DGAUGE_ATTN_BUILD_EXAMPLES=ON -DGAUGE_ATTN_BUILD_BENCHMARKS=ON \
    -DGAUGE_ATTN_ENABLE_CUDA="$cuda" -DGAUGE_ATTN_WERROR=ON "${gpu[@]}" \
    -DGAUGE_ATTN_BUILD_GPU_BENCHMARKS=OFF  # the GPU tests compile every kernel; gpu_check.sh builds these
  timed cmake --build build -j "$jobs"
  timed ctest --test-dir build -L cpu "${ctest_args[@]}"
  if [ "$cuda" = ON ]; then
    timed ctest --test-dir build -L gpu "${ctest_args[@]}"
  fi
  # From the repository root, so that `import gauge_attn` is the installed package (python/ is not
  # on the path). pytest exits 5 when it collected no test: that is a failure here too.
  status=0
  .venv/bin/python -m pytest python/tests -rs || status=$?
  if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests in python/tests" >&2
  fi
  exit "$status"
else
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
  # The finite-difference checks difference every 8th entry here (tests/gradient_check.hpp says why;
  # every entry in the Release run): at -O1 under the sanitizers they would take most of CI's time.
  export GAUGE_ATTN_TEST_FD_STRIDE="${GAUGE_ATTN_TEST_FD_STRIDE:-8}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  # GCC's -Wmaybe-uninitialized gives false positives under -fsanitize (in libstdc++'s <regex>, for
  # one); the Release build keeps that warning an error.
  # -g1 (line tables, which the sanitizers' stack traces need) instead of Debug's -g: full debug
  # information of the template-heavy tests costs a third of this build's time. -O1, not -O0: -O0
  # compiled in 0.63 of the time (kl_test.cpp: 62 s against 98 s) but ran the study's Eigen-heavy
  # tests ~50 times slower (165 s each), which cost more than it saved.
  # UBSan without its alignment and null checks: they are a third of this build's compile time
  # (kl_test.cpp 128 s -> 85 s, so3_test.cpp 51 s -> 38 s without alignment alone), and what they
  # would catch is caught otherwise or cannot happen here: ASan reports a null dereference, and the
  # library reinterprets no typed pointer (npy.hpp copies bytes into typed storage with memcpy).
  cmake -S . -B build-asan $(generator build-asan) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DCMAKE_CXX_FLAGS="-O1 -fsanitize=address,undefined -fno-sanitize=alignment,null -fno-omit-frame-pointer -Wno-maybe-uninitialized" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DGAUGE_ATTN_BUILD_TESTS=ON -DGAUGE_ATTN_BUILD_EXAMPLES=OFF -DGAUGE_ATTN_BUILD_BENCHMARKS=OFF \
    -DGAUGE_ATTN_BUILD_CHECKS=OFF -DGAUGE_ATTN_ENABLE_CUDA=OFF -DGAUGE_ATTN_WERROR=ON
  timed cmake --build build-asan -j "$jobs"
  timed ctest --test-dir build-asan -L cpu "${ctest_args[@]}"
fi
