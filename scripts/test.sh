#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration and
# the one-iteration benchmark smoke runs) with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j "${FRESHET_JOBS:-$(nproc)}"
