#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test gauge_attn. Idempotent: it
# installs only what is missing.
#   scripts/setup.sh                the distribution's packages (as root or through sudo), then the
#                                   Python environment .venv: the pins of python/requirements-dev.txt
#                                   (torch among them) and the package python/ built against them
#   scripts/setup.sh --system-only  the distribution's packages alone (all that the C++ build needs)
# PYTHON names the interpreter that makes .venv (default python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_env=yes
case "${1:-}" in
  "") ;;
  --system-only) python_env=no ;;
  *) echo "usage: scripts/setup.sh [--system-only]" >&2; exit 2 ;;
esac

# The toolchain (CMake, g++, make, and Ninja, which test.sh prefers), the libraries, Google Benchmark
# (libbenchmark-dev: without it CMake skips bench/ with only a status message), gnuplot-nox, which
# draws the charts of tools/gauge_attn_study at run time (without it they stay as scripts), python3-venv and
# python3-dev, with which the distribution's python3 makes .venv and compiles the extension, and
# fortunes (with fortunes-min), the English text that examples/python/train_gauge_lm.py learns.
packages=(cmake g++ make ninja-build libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev libstb-dev libbenchmark-dev
          gnuplot-nox python3-venv python3-dev fortunes)

install_system_packages() {
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "setup.sh: no dpkg here; make sure these are installed: ${packages[*]}" >&2
    return 0
  fi
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  echo "setup.sh: installing ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup.sh: not root and no sudo; install these first: ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# .venv (git-ignored) with the pinned requirements and the package. pip downloads only what is not
# yet satisfied. The package is built without build isolation, against the venv's torch (an isolated
# build would fetch whatever torch is newest), and reinstalled only when a file it is built from
# changed: its sources, the library's headers or the pins, or the build's settings GAUGE_ATTN_SPECS
# and GAUGE_ATTN_CUDA (the hash of them all is kept in the venv).
install_python_env() {
  local venv=.venv
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup.sh: making $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check -r python/requirements-dev.txt \
    | { grep -v '^Requirement already satisfied' || true; }
  local stamp="$venv/.gauge_attn-build-inputs" inputs
  inputs=$({ find python/pyproject.toml python/setup.py python/requirements-dev.txt python/csrc python/gauge_attn \
               include cuda/include -type f \( -name '*.py' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \
               -o -name '*.cu' -o -name '*.cuh' -o -name '*.toml' -o -name '*.txt' \) -print0 |
               sort -z | xargs -0 sha256sum
             echo "GAUGE_ATTN_SPECS=${GAUGE_ATTN_SPECS:-} GAUGE_ATTN_CUDA=${GAUGE_ATTN_CUDA:-}"; } | sha256sum)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
    return 0
  fi
  echo "setup.sh: building and installing the Python package python/ into $venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-build-isolation --no-deps ./python
  echo "$inputs" >"$stamp"
}

install_system_packages
if [ "$python_env" = yes ]; then
  install_python_env
fi
