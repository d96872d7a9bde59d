#!/usr/bin/env bash
# GPU check for the lent H100/H200 machine, which has nvcc but no Eigen, Catch2 or Google
# Benchmark: those travel in .carry/ (copies of this machine's Debian headers and libbenchmark),
# and so does the upstream fixture, which lives outside the checkout:
#   mkdir -p .carry/include .carry/lib && cp -r /usr/include/{eigen3,catch2,benchmark} .carry/include/ &&
#   cp -P /usr/lib/x86_64-linux-gnu/libbenchmark.so* .carry/lib/ && cp -r ../shared/fixtures .carry/
# (the study tool also needs CLI11, nlohmann-json and stb: cp -r /usr/include/{CLI,nlohmann,stb} .carry/include/).
# Builds the GPU tests and benchmarks with plain compiler calls, runs the tests (forward and backward)
# and the float error table (bench/float_error.cpp, GPU columns),
# compute-sanitizer (memcheck, racecheck) on small cases, the benchmarks (gpu_forward, gpu_backward)
# and the PyTorch baselines; results (ptxas reports, test logs, JSON) go to $OUT.
# `study` builds gauge_attn_study with its GPU path instead, times the default run with --device cuda
# and compares its tables with --device cpu's, on the default run and the small cases of CTest.
# `torch` builds the Python package python/ with its CUDA kernels into build-gpu/torch-site (the
# machine's python3 and torch, offline: pip --no-build-isolation --no-index; MAX_JOBS, default 16),
# runs its whole pytest suite, gpu tests included (against .carry/fixtures), and the benchmark
# bench/torch_module.py; `all` ends with it unless NO_TORCH=1 (which also skips the baselines).
# A second run on the same machine recompiles only what changed (python/build/ is kept); the words
# after `torch` choose its parts (default all three), e.g. `torch build test`, then `torch bench`.
# `build` only builds the test and benchmark programs into build-gpu/ (any machine with nvcc and .carry:
# build them here, carry build-gpu/ to the GPU machine and run there with GPU_CHECK_PREBUILT=1, which
# skips the build of `tests`, `bench` and `all`; that spares the device time the compile takes).
#   scripts/gpu_check.sh [tests|bench|all|build|study|torch [build] [test] [bench]]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-all}
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out" build-gpu
carry=.carry
inc=(-Iinclude -Icuda/include -isystem "$carry/include" -isystem "$carry/include/eigen3"
     "-DGAUGE_ATTN_FIXTURE_DIR=\"$PWD/$carry/fixtures/upstream_parity_small\"")
nvcc_flags=(-std=c++17 -O3 -arch=sm_90 -lineinfo "${inc[@]}")
export LD_LIBRARY_PATH="$PWD/$carry/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/device.txt"
git log -1 --format='commit %H %cd' 2>/dev/null | tee -a "$out/device.txt"

runner_specs=(Upstream MoreTensor HigherRank Scaled SingleL9 WideHeads)  # tests/cuda/CMakeLists.txt's, without specs::
programs=(forward_test backward_test float_error learn_beliefs gpu_forward gpu_backward headers_under_nvcc_test)
build() {
  local f
  for f in "${programs[@]}"; do rm -f "build-gpu/$f"; done
  # The forward runner: one object per named spec (tests/cuda/CMakeLists.txt), then its dispatcher.
  local spec
  for spec in "${runner_specs[@]}"; do
    nvcc "${nvcc_flags[@]}" -Xptxas -v -DGAUGE_ATTN_RUNNER_SPEC=$([ $spec = WideHeads ] || echo specs::)$spec \
      $([ $spec = Upstream ] && echo -DGAUGE_ATTN_RUNNER_FLOAT_PAIRWISE) $([ $spec = WideHeads ] && echo -DGAUGE_ATTN_RUNNER_FORWARD_ONLY) \
      -c tests/cuda/forward_runner_spec.cu -o build-gpu/forward_runner_$spec.o 2> build-gpu/ptxas_$spec.txt &
  done
  g++ -std=c++17 -O2 "${inc[@]}" -c tests/cuda/forward_runner.cpp -o build-gpu/forward_runner.o &
  nvcc "${nvcc_flags[@]}" -Xptxas -v -c tests/cuda/backward_runner.cu -o build-gpu/backward_runner.o \
    2> build-gpu/ptxas_backward.txt &
  nvcc "${nvcc_flags[@]}" -c tests/cuda/gpu_count.cu -o build-gpu/gpu_count.o &
  g++ -std=c++17 -O2 -fopenmp "${inc[@]}" -c tests/cuda/forward_test.cpp -o build-gpu/forward_test.o &
  g++ -std=c++17 -O2 -fopenmp "${inc[@]}" -c tests/cuda/backward_test.cpp -o build-gpu/backward_test.o &
  nvcc "${nvcc_flags[@]}" bench/gpu_forward.cu -L"$carry/lib" -lbenchmark -o build-gpu/gpu_forward &
  nvcc "${nvcc_flags[@]}" bench/gpu_backward.cu -L"$carry/lib" -lbenchmark -o build-gpu/gpu_backward &
  nvcc "${nvcc_flags[@]}" tests/cuda/headers_under_nvcc_test.cu -o build-gpu/headers_under_nvcc_test &
  nvcc "${nvcc_flags[@]}" -c examples/learn_beliefs_gpu.cu -o build-gpu/learn_beliefs_gpu.o &
  g++ -std=c++17 -O2 -fopenmp -DGAUGE_ATTN_FLOAT_ERROR_GPU "${inc[@]}" -c bench/float_error.cpp -o build-gpu/float_error.o &
  g++ -std=c++17 -O2 -fopenmp -DGAUGE_ATTN_EXAMPLE_CUDA "${inc[@]}" -c examples/learn_beliefs.cpp -o build-gpu/learn_beliefs.o &
  wait
  g++ -fopenmp build-gpu/learn_beliefs.o build-gpu/learn_beliefs_gpu.o -L/usr/local/cuda/lib64 -lcudart \
    -o build-gpu/learn_beliefs
  local forward_runner=(build-gpu/forward_runner.o)
  for spec in "${runner_specs[@]}"; do forward_runner+=(build-gpu/forward_runner_$spec.o); done
  g++ -fopenmp build-gpu/float_error.o "${forward_runner[@]}" build-gpu/gpu_count.o -L/usr/local/cuda/lib64 -lcudart \
    -o build-gpu/float_error
  g++ -fopenmp build-gpu/forward_test.o "${forward_runner[@]}" build-gpu/gpu_count.o -L/usr/local/cuda/lib64 -lcudart \
    -o build-gpu/forward_test
  g++ -fopenmp build-gpu/backward_test.o build-gpu/backward_runner.o build-gpu/gpu_count.o -L/usr/local/cuda/lib64 \
    -lcudart -o build-gpu/backward_test
  # Every attention kernel of the named specs: the spec, then its name, stack, spills, registers.
  for spec in "${runner_specs[@]}"; do
    echo "== $spec"
    grep -A3 "Compiling entry function '.*flash_kl_kernel" build-gpu/ptxas_$spec.txt | grep -v "^--"
  done > "$out/ptxas.txt"
  grep -E "^==|spill" "$out/ptxas.txt"
  # Every backward kernel of the backward test's instantiations: name, then its stack, spills, registers.
  grep -A3 -E "Compiling entry function '.*(flash_kl_backward_kernel|row_gradients_kernel|lift_backward_kernel|belief_gradients_kernel)" \
    build-gpu/ptxas_backward.txt | grep -v "^--" | tee "$out/ptxas_backward.txt" | grep -E "registers|spill"
  for f in "${programs[@]}"; do
    [ -x "build-gpu/$f" ] || { echo "build: build-gpu/$f was not built (see the compiler's messages above)"; return 1; }
  done
}

# gauge_attn_study as tools/CMakeLists.txt builds it with CUDA: study_gpu.cu by nvcc, the .cpp sources
# its add_executable and target_sources name by g++; and its test helpers. Fails when any call does.
study_build() {
  local host=(-std=c++17 -O2 -fopenmp "${inc[@]}" -isystem "$carry/include/stb" -DGAUGE_ATTN_STUDY_CUDA=1)
  local sources pids=() failed=0 f p
  sources=$(sed -n '/^ *\(add_executable\|target_sources\)(gauge_attn_study/,/)/p' tools/CMakeLists.txt |
            grep -o '[A-Za-z0-9_]*\.cpp')
  echo "nvcc: tools/study_gpu.cu; g++:" $sources
  rm -f build-gpu/study_*.o
  nvcc "${nvcc_flags[@]}" -c tools/study_gpu.cu -o build-gpu/study_gpu.o & pids+=($!)
  for f in $sources; do
    g++ "${host[@]}" -c "tools/$f" -o "build-gpu/study_${f%.cpp}.o" & pids+=($!)
  done
  g++ "${host[@]}" tools/tests/compare_study_tables.cpp -o build-gpu/compare_study_tables & pids+=($!)
  g++ "${host[@]}" tools/tests/make_study_inputs.cpp -o build-gpu/make_study_inputs & pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] && g++ -fopenmp build-gpu/study_*.o -L/usr/local/cuda/lib64 -lcudart -o build-gpu/gauge_attn_study
}

# The Python package (python/), built, tested and timed on this GPU; logs and JSON into $out.
# Arguments: the parts to run, of build, test and bench (none: all three).
torch_stage() {
  local parts=" ${*:-build test bench} " site=build-gpu/torch-site failed=0
  local part
  for part in $parts; do
    case $part in build | test | bench) ;; *) echo "torch: unknown part '$part' (build, test, bench)"; return 2 ;; esac
  done
  local env=(MAX_JOBS="${MAX_JOBS:-16}" GAUGE_ATTN_CUDA=1 EIGEN3_INCLUDE_DIR="$PWD/$carry/include/eigen3"
             GAUGE_ATTN_JIT_DIR="$PWD/build-gpu/torch-jit")
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__)' |
    tee "$out/torch_versions.txt"
  if [[ $parts == *" build "* ]]; then
    echo "== the package with CUDA kernels into $site (log: $out/torch_build.txt)"
    rm -rf "$site"
    if ! { time env "${env[@]}" python3 -m pip install --disable-pip-version-check --no-build-isolation --no-deps \
             --no-index -v --target "$site" ./python; } > "$out/torch_build.txt" 2>&1; then
      tail -40 "$out/torch_build.txt"
      echo "torch: the build failed"
      return 1
    fi
    grep -E "gauge_attn: compiling|^real" "$out/torch_build.txt"
  fi
  if [ ! -f "$site/gauge_attn/_build_config.py" ]; then
    echo "torch: no package in $site: run the build part first"
    return 1
  fi
  if [[ $parts == *" test "* ]]; then
    echo "== pytest python/tests, gpu tests included (log: $out/pytest.txt)"
    env "${env[@]}" PYTHONPATH="$PWD/$site" GAUGE_ATTN_FIXTURE_DIR="$PWD/$carry/fixtures/upstream_parity_small" \
      python3 -m pytest python/tests -v -rs --durations=15 > "$out/pytest.txt" 2>&1 || failed=1
    tail -25 "$out/pytest.txt"
    if grep -q "SKIPPED.*test_cuda" "$out/pytest.txt"; then  # here the GPU must run them
      echo "torch: gpu tests were skipped"
      failed=1
    fi
  fi
  if [[ $parts == *" bench "* ]]; then
    echo "== bench/torch_module.py (log: $out/torch_module.txt)"
    env "${env[@]}" PYTHONPATH="$PWD/$site" PYTHONUNBUFFERED=1 timeout 300 \
      python3 bench/torch_module.py --out "$out/torch_module.json" > "$out/torch_module.txt" 2>&1 || failed=1
    tail -20 "$out/torch_module.txt"
  fi
  [ "$failed" = 0 ] && echo "torch: all checks passed" || echo "torch: FAILED (see above and $out)"
  return $failed
}

status=0
if [ "$what" = torch ]; then
  torch_stage "${@:2}"
  exit $?
fi
if [ "$what" = study ]; then
  echo "== build gauge_attn_study (CUDA), compare_study_tables, make_study_inputs"
  time study_build || { echo "study: the build failed"; exit 1; }
  study=./build-gpu/gauge_attn_study
  tables=(heads summary diversity kl_by_dim)
  for device in cuda cpu; do
    echo "== the default run with --device $device, timed ($(nproc) CPU cores)"
    rm -rf "$out/study_$device"
    { time "$study" --device "$device" --out "$out/study_$device"; } > "$out/study_$device.txt" 2>&1 || status=1
    head -1 "$out/study_$device.txt"
    tail -4 "$out/study_$device.txt"
  done
  echo "== the default run: the tables of --device cpu against --device cuda"
  ./build-gpu/compare_study_tables "$out/study_cpu" "$out/study_cuda" "${tables[@]}" | tee "$out/study_compare.txt" ||
    status=1
  echo "== the small cases of the CTest tests study.devices_agree_*"
  inputs=build-gpu/study_inputs
  ./build-gpu/make_study_inputs "$inputs" || status=1
  kappas="--kappa;10,0.0086,0.0001"
  cases=("synthetic:--batch;2;--tokens;16;$kappas"
         "full_covariance:--mu;$inputs/e41_mu.npy;--sigma;$inputs/e41_sigma_full.npy;--phi;$inputs/e41_phi.npy;$kappas")
  for c in "${cases[@]}"; do
    echo "-- ${c%%:*}"
    cmake -DSTUDY="$study" -DCOMPARE=./build-gpu/compare_study_tables "-DARGS=${c#*:}" -DDIR="$out/study_${c%%:*}" \
      -P tools/tests/compare_devices.cmake 2>&1 | tee "$out/study_${c%%:*}.txt" || status=1
    if grep -q "skipped" "$out/study_${c%%:*}.txt"; then status=1; fi  # here the GPU must run
  done
  echo "== sizes beyond the GPU memory are refused with a clear error"
  "$study" --device cuda --spec upstream --batch 1 --tokens 100000 --kappa 1 2>&1 | tee "$out/study_memory.txt"
  grep -q "MiB are free" "$out/study_memory.txt" || status=1
  [ "$status" = 0 ] && echo "study: all checks passed" || echo "study: FAILED (see above and $out)"
  exit $status
fi
if [ "$what" = variants ]; then  # registers against occupancy: blocks per SM : queries per thread of wide heads
  variants=${VARIANTS:-"4:2 3:4 2:4 3:2"}
  for v in $variants; do
    nvcc "${nvcc_flags[@]}" -DGAUGE_ATTN_FLASH_MIN_BLOCKS=${v%:*} -DGAUGE_ATTN_FLASH_WIDE_QUERIES=${v#*:} \
      bench/gpu_forward.cu -L"$carry/lib" -lbenchmark -o "build-gpu/gpu_forward_${v/:/_}" &
  done
  wait
  for v in $variants; do
    echo "== min blocks ${v%:*}, wide queries ${v#*:}"
    "./build-gpu/gpu_forward_${v/:/_}" --benchmark_filter='W[123]_|only' --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true 2>&1 | grep median | cut -c1-110
  done
  v=${variants%% *}; v=${v/:/_}
  ncu --kernel-name regex:'lift|flash' --launch-skip 6 --launch-count 4 --section SpeedOfLight \
    "./build-gpu/gpu_forward_$v" --benchmark_filter='W1_upstream/' --benchmark_min_time=0.01 2>&1 |
    grep -E "lift|flash|Duration" | cut -c1-120 | tee "$out/ncu_w1.txt"
  exit 0
fi
if [ "$what" = build ]; then
  time build
  exit $?
fi
if [ "$what" != profile ] && [ -z "${GPU_CHECK_PREBUILT:-}" ]; then time build || status=1; fi
if [ "$what" != bench ] && [ "$what" != profile ]; then
  ./build-gpu/headers_under_nvcc_test || status=1
  ./build-gpu/forward_test --durations yes > "$out/forward_test.txt" 2>&1 || status=1
  tail -40 "$out/forward_test.txt"
  ./build-gpu/backward_test --durations yes > "$out/backward_test.txt" 2>&1 || status=1
  tail -60 "$out/backward_test.txt"
  # The float error table of docs/conventions.md (Precision), with its GPU columns.
  ./build-gpu/float_error > "$out/float_error.txt" 2>&1 || status=1
  cat "$out/float_error.txt"
  for device in cuda cpu; do  # the example that learns, its default run on each device
    ./build-gpu/learn_beliefs --device "$device" > "$out/learn_beliefs_$device.txt" 2>&1 || status=1
    tail -3 "$out/learn_beliefs_$device.txt"
  done
  for tool in memcheck racecheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 9 ./build-gpu/forward_test "GPU log-sum-exp*" 2>&1 | tail -4 | tee -a "$out/sanitizer.txt" || status=1
    # The tensor-core path's widest tiles (queries in shared memory, 32-key steps), masks, valid lengths.
    compute-sanitizer --tool "$tool" --error-exitcode 9 ./build-gpu/forward_test "GPU forward matches the CPU reference on wide heads*" \
      2>&1 | tail -4 | tee -a "$out/sanitizer.txt" || status=1
    # Small backward cases: N = 8 and 9 with every saved state and incoming gradient.
    compute-sanitizer --tool "$tool" --error-exitcode 9 ./build-gpu/backward_test "GPU backward reports bad input*" 2>&1 |
      tail -4 | tee -a "$out/sanitizer.txt" || status=1
  done
  # Padded sequences, N = 1 and N not a multiple of any tile, under memcheck.
  compute-sanitizer --tool memcheck --error-exitcode 9 ./build-gpu/backward_test "GPU backward handles awkward*" 2>&1 |
    tail -4 | tee -a "$out/sanitizer.txt" || status=1
fi
if [ "$what" != tests ] && [ "$what" != profile ]; then
  ./build-gpu/gpu_forward --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/gpu_forward.json" --benchmark_out_format=json 2>&1 | tail -25 || status=1
  ./build-gpu/gpu_backward --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/gpu_backward.json" --benchmark_out_format=json 2>&1 | grep -E "median|Benchmark" || status=1
fi
if [ "$what" != tests ] && [ "$what" != profile ] && command -v nsys >/dev/null; then  # W1: where the microseconds go
  nsys profile -o build-gpu/w1 --force-overwrite true ./build-gpu/gpu_forward --benchmark_filter='W1_upstream/' \
    --benchmark_min_time=0.05 > /dev/null 2>&1 &&
    nsys stats --report cuda_gpu_kern_sum --report cuda_api_sum --format csv build-gpu/w1.nsys-rep \
      > "$out/nsys_w1.csv" 2>&1
  cut -c1-220 "$out/nsys_w1.csv" | head -40
fi
if [ "$what" = profile ] || [ -n "${PROFILE:-}" ]; then  # one W2 attention launch: throughput and stalls
  ncu --kernel-name regex:flash_kl --launch-skip 1 --launch-count 1 --section SpeedOfLight \
    --section Occupancy --section InstructionStats \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
    ./build-gpu/gpu_forward --benchmark_filter='W2_upstream/' --benchmark_min_time=0.01 > "$out/ncu_w2.txt" 2>&1
  grep -E "Duration|Issue Slots|Executed Ipc|stalled" "$out/ncu_w2.txt" | sort -k3 -rn | head -14
fi
if [ "$what" != tests ] && [ "$what" != profile ]; then
  if [ -f bench/torch_baselines.py ] && [ "${NO_TORCH:-0}" != 1 ]; then
    PYTHONUNBUFFERED=1 timeout 400 python3 bench/torch_baselines.py --out "$out/torch_baselines.json" 2>&1 | tail -30 || status=1
  fi
fi
if [ "$what" = all ] && [ "${NO_TORCH:-0}" != 1 ]; then
  torch_stage || status=1
fi
exit $status
