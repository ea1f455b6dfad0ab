#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, integration,
# the dashboard in headless Chromium, the one-iteration benchmark smoke runs and the layering
# check) with CTest, then the formatting check (scripts/check_format.sh; FRESHET_SKIP_FORMAT=1
# skips it), clang's thread-safety analysis over every source (scripts/thread_safety.sh;
# FRESHET_SKIP_THREAD_SAFETY=1 skips it), the concurrency tests under ThreadSanitizer
# (scripts/tsan.sh; FRESHET_SKIP_TSAN=1 skips them) and the libFuzzer targets for 45 s each
# (scripts/fuzz.sh; FRESHET_FUZZ_SECONDS sets another time, FRESHET_SKIP_FUZZ=1 skips them).
# Ends with the time each step took: on 2 cores the whole run should stay under 30 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
timings=()
test_started=$SECONDS
started=$SECONDS
# Records the time since the previous step ended, as "<step> <seconds> s".
step_done() {
  timings+=("$1 $((SECONDS - started)) s")
  started=$SECONDS
}
scripts/build.sh "$@"
step_done build
# The bootstrap (in build.sh) installed Chromium, its driver and Selenium: the dashboard's browser
# test must run, not skip (tests/browser/CMakeLists.txt).
export FRESHET_REQUIRE_BROWSER=${FRESHET_REQUIRE_BROWSER:-1}
export FRESHET_REQUIRE_HAPROXY=${FRESHET_REQUIRE_HAPROXY:-1}
ctest --test-dir build --output-on-failure -j "${FRESHET_JOBS:-$(nproc)}"
step_done ctest
if [[ "${FRESHET_SKIP_FORMAT:-0}" != "1" ]]; then
  scripts/check_format.sh
  step_done check_format
fi
if [[ "${FRESHET_SKIP_THREAD_SAFETY:-0}" != "1" ]]; then
  scripts/thread_safety.sh
  step_done thread_safety
fi
if [[ "${FRESHET_SKIP_TSAN:-0}" != "1" ]]; then
  scripts/tsan.sh
  step_done tsan
fi
if [[ "${FRESHET_SKIP_FUZZ:-0}" != "1" ]]; then
  FRESHET_FUZZ_SECONDS=${FRESHET_FUZZ_SECONDS:-45} scripts/fuzz.sh
  step_done fuzz
fi
summary=$(printf '%s, ' "${timings[@]}")
echo "test: ${summary%, }; all $((SECONDS - test_started)) s"
