#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test gauge_attn. Idempotent:
# installs only the packages that are missing, as root or through sudo.
set -euo pipefail

# The toolchain (CMake, g++, make), the libraries, Google Benchmark (libbenchmark-dev: without it
# CMake skips bench/ with only a status message), and gnuplot-nox, which draws the charts of
# tools/gauge_attn_study at run time (without it they stay as scripts).
packages=(cmake g++ make libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev libstb-dev libbenchmark-dev
          gnuplot-nox)

if ! command -v dpkg >/dev/null 2>&1; then
  echo "setup.sh: no dpkg here; make sure these are installed: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup.sh: not root and no sudo; install these first: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
