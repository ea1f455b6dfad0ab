#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration and
# the one-iteration benchmark smoke runs) with CTest, then the concurrency tests under
# ThreadSanitizer (scripts/tsan.sh; FRESHET_SKIP_TSAN=1 skips that part), then the libFuzzer
# targets for a minute each (scripts/fuzz.sh; FRESHET_SKIP_FUZZ=1 skips that part).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j "${FRESHET_JOBS:-$(nproc)}"
if [[ "${FRESHET_SKIP_TSAN:-0}" != "1" ]]; then
  scripts/tsan.sh
fi
if [[ "${FRESHET_SKIP_FUZZ:-0}" != "1" ]]; then
  scripts/fuzz.sh
fi
