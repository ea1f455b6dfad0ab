#!/usr/bin/env bash
# Kill -9 harness: `freshet serve --source file:... --data-dir D` ingests a generated stream and is
# killed with SIGKILL at random moments KILLS times, restarted after each kill; a final run
# completes the stream. The stored state must then hold every event exactly once: events_applied
# equal to the stream's length, and every user's and item's stored event count equal to the
# file's. This is the CI test tests/store/crash_recovery_test.cc at a larger scale.
#
#   scripts/crash_harness.sh [EVENTS=1000000] [KILLS=50]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEST=$ROOT/build/tests/store/freshet_crash_recovery_test
[[ -x $TEST ]] || { echo "build first: scripts/build.sh (missing $TEST)" >&2; exit 1; }
FRESHET_CRASH_EVENTS=${1:-1000000} FRESHET_CRASH_KILLS=${2:-50} exec "$TEST"
