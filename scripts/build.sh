#!/usr/bin/env bash
# Configures and builds freshet into ./build (Release, warnings as errors). Extra arguments go to
# the CMake configure step, e.g. scripts/build.sh -DFRESHET_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
jobs=${FRESHET_JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null 2>&1 && [[ ! -f build/Makefile ]]; then generator=(-G Ninja); fi
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFRESHET_WERROR=ON "$@" >/dev/null
cmake --build build -j "$jobs"
