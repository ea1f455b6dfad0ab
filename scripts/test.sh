#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration,
# the dashboard in headless Chromium, the one-iteration benchmark smoke runs and the layering
# check) with CTest, then the formatting check (scripts/check_format.sh; FRESHET_SKIP_FORMAT=1
# skips it), clang's thread-safety analysis over every source (scripts/thread_safety.sh;
# FRESHET_SKIP_THREAD_SAFETY=1 skips it), the concurrency tests under ThreadSanitizer
# (scripts/tsan.sh; FRESHET_SKIP_TSAN=1 skips them) and the libFuzzer targets for a minute each
# (scripts/fuzz.sh; FRESHET_SKIP_FUZZ=1 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
# The bootstrap (in build.sh) installed Chromium, its driver and Selenium: the dashboard's browser
# test must run, not skip (tests/browser/CMakeLists.txt).
export FRESHET_REQUIRE_BROWSER=${FRESHET_REQUIRE_BROWSER:-1}
export FRESHET_REQUIRE_HAPROXY=${FRESHET_REQUIRE_HAPROXY:-1}
ctest --test-dir build --output-on-failure -j "${FRESHET_JOBS:-$(nproc)}"
if [[ "${FRESHET_SKIP_FORMAT:-0}" != "1" ]]; then
  scripts/check_format.sh
fi
if [[ "${FRESHET_SKIP_THREAD_SAFETY:-0}" != "1" ]]; then
  scripts/thread_safety.sh
fi
if [[ "${FRESHET_SKIP_TSAN:-0}" != "1" ]]; then
  scripts/tsan.sh
fi
if [[ "${FRESHET_SKIP_FUZZ:-0}" != "1" ]]; then
  scripts/fuzz.sh
fi
