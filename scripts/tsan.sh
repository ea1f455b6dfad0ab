#!/usr/bin/env bash
# ThreadSanitizer run of the tests that learn and serve at once: the engine with concurrent
# readers, a snapshot restore while running, engines exchanging their item models as replicas,
# and the HTTP API on a live engine (plus the HTTP server's own concurrency tests). Builds in build-tsan/ (CUDA and benchmarks off).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${JOBS:-$(nproc)}
generator=(); command -v ninja >/dev/null && [[ ! -f "$ROOT/build-tsan/Makefile" ]] && generator=(-G Ninja)
cmake -S "$ROOT" -B "$ROOT/build-tsan" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRESHET_TSAN=ON \
  -DFRESHET_CUDA=OFF -DFRESHET_BUILD_BENCHMARKS=OFF -DFRESHET_NATIVE=OFF >/dev/null
cmake --build "$ROOT/build-tsan" -j "$JOBS" --target freshet_engine_test \
  freshet_engine_replicas_test freshet_serving_api_test freshet_serving_test
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/scripts/tsan.supp ${TSAN_OPTIONS:-}"
"$ROOT/build-tsan/tests/engine/freshet_engine_test" --gtest_filter='EngineTest.*:LiveModelTest.*'
"$ROOT/build-tsan/tests/engine/replicas/freshet_engine_replicas_test" \
  --gtest_filter='EngineReplicasTest.*'
"$ROOT/build-tsan/tests/serving/freshet_serving_api_test"
"$ROOT/build-tsan/tests/serving/freshet_serving_test"
echo "tsan: no data races"
