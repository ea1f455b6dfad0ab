#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) into build-fuzz/ and runs
# each for a bounded time from a copy of its seed corpus (tests/fuzz/corpus/<target>/). Exits
# non-zero when a target finds a crash, leak, timeout or broken invariant, and prints the command
# that reproduces it. Crash inputs land in build-fuzz/artifacts/, logs in build-fuzz/logs/.
#
# Targets (tests/fuzz/CMakeLists.txt): fuzz_event_codec, fuzz_http_routing, fuzz_http_server,
# fuzz_json_writer, fuzz_snapshot_manifest, fuzz_catalog, fuzz_row_codecs. With N cores, up to N
# of them run at once (FRESHET_FUZZ_PARALLEL).
#
# Environment:
#   FRESHET_FUZZ_SECONDS=60      time per target (libFuzzer -max_total_time)
#   FRESHET_FUZZ_TARGETS="..."   run only these targets (space-separated)
#   FRESHET_FUZZ_PARALLEL=N      targets run at once (default: the number of cores)
#   FRESHET_FUZZ_ARGS="..."      extra libFuzzer flags for every target
#   FRESHET_FUZZ_KEEP_CORPUS=1   keep build-fuzz/corpus/<target>/ from earlier runs (grows with
#                                 each run) instead of starting again from the seeds
#   FRESHET_FUZZ_BUILD_DIR=dir   build tree (default build-fuzz/ in the repository)
#   FRESHET_JOBS=N               build parallelism (default: the number of cores)
#
# A longer campaign, e.g. an hour per target, keeping what it learns between runs:
#   FRESHET_FUZZ_SECONDS=3600 FRESHET_FUZZ_KEEP_CORPUS=1 scripts/fuzz.sh
# or one target on 8 cores (libFuzzer -jobs/-workers: 8 processes, each for the given time; their
# logs are build-fuzz/logs/<target>/fuzz-N.log):
#   FRESHET_FUZZ_TARGETS=fuzz_event_codec FRESHET_FUZZ_SECONDS=3600 \
#     FRESHET_FUZZ_ARGS="-jobs=8 -workers=8" scripts/fuzz.sh
# A target binary also runs directly: build-fuzz/tests/fuzz/<target> [libFuzzer flags] [corpus
# dirs or input files]; -help=1 lists the flags.
#
# To turn a crash into a regression seed: minimise it first
#   build-fuzz/tests/fuzz/<target> -minimize_crash=1 -runs=100000 build-fuzz/artifacts/<file>
# and copy the smallest result into tests/fuzz/corpus/<target>/ once the bug is fixed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FRESHET_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=${FRESHET_FUZZ_SECONDS:-60}
JOBS=${FRESHET_JOBS:-$(nproc)}
PARALLEL=${FRESHET_FUZZ_PARALLEL:-$(nproc)}
ALL_TARGETS="fuzz_event_codec fuzz_http_routing fuzz_http_server fuzz_json_writer fuzz_snapshot_manifest fuzz_catalog fuzz_row_codecs"
read -r -a TARGETS <<<"${FRESHET_FUZZ_TARGETS:-$ALL_TARGETS}"
read -r -a EXTRA_ARGS <<<"${FRESHET_FUZZ_ARGS:-}"

"$ROOT/scripts/bootstrap.sh"
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/bootstrap.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi

start=$(date +%s)
generator=()
if command -v ninja >/dev/null && [[ ! -f "$BUILD/Makefile" ]]; then generator=(-G Ninja); fi
# -Wno-unknown-warning-option: the project's warning list has GCC-only options.
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS=-Wno-unknown-warning-option \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRESHET_FUZZ=ON -DFRESHET_CUDA=OFF \
  -DFRESHET_BUILD_TESTS=OFF -DFRESHET_BUILD_BENCHMARKS=OFF -DFRESHET_NATIVE=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
built=$(date +%s)
echo "fuzz: built ${TARGETS[*]} in $((built - start)) s"

symbolizer=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
if [[ -z "$symbolizer" && -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
if [[ -n "$symbolizer" ]]; then export ASAN_SYMBOLIZER_PATH="$symbolizer"; fi
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

mkdir -p "$BUILD/artifacts" "$BUILD/logs" "$BUILD/corpus"

# Runs one target; its exit status is the fuzzer's.
run_target() {
  local t=$1
  local seeds="$ROOT/tests/fuzz/corpus/$t"
  local work="$BUILD/corpus/$t"
  local logdir="$BUILD/logs/$t"
  if [[ "${FRESHET_FUZZ_KEEP_CORPUS:-0}" != "1" ]]; then rm -rf "$work"; fi
  rm -rf "$logdir"
  mkdir -p "$work" "$logdir"
  cp "$seeds"/* "$work"/
  local dict=()
  if [[ -f "$ROOT/tests/fuzz/dict/$t.dict" ]]; then dict=(-dict="$ROOT/tests/fuzz/dict/$t.dict"); fi
  # cwd: where libFuzzer writes its -jobs logs.
  (cd "$logdir" && exec "$BUILD/tests/fuzz/$t" "$work" \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=30 -rss_limit_mb=2048 \
      -artifact_prefix="$BUILD/artifacts/$t-" -print_final_stats=1 "${dict[@]}" \
      "${EXTRA_ARGS[@]}") >"$BUILD/logs/$t.log" 2>&1
}

# Sum of one of libFuzzer's final stats (-print_final_stats) over the target's logs.
fuzz_stat() {
  local logs=("$BUILD/logs/$1.log") f
  for f in "$BUILD/logs/$1"/fuzz-*.log; do
    if [[ -f "$f" ]]; then logs+=("$f"); fi
  done
  awk -v key="stat::$2:" '$1 == key {s += $2} END {print s + 0}' "${logs[@]}" 2>/dev/null ||
    echo "?"
}

# Artifacts from earlier runs would be blamed on this one.
for t in "${TARGETS[@]}"; do rm -f "$BUILD/artifacts/$t-"*; done

echo "fuzz: running ${TARGETS[*]} for ${SECONDS_PER_TARGET} s each, up to $PARALLEL at once"
for t in "${TARGETS[@]}"; do
  while (($(jobs -rp | wc -l) >= PARALLEL)); do wait -n || true; done
  rm -f "$BUILD/logs/$t.rc"
  (if run_target "$t"; then echo 0; else echo $?; fi >"$BUILD/logs/$t.rc") &
done
wait

failed=()
for t in "${TARGETS[@]}"; do
  log="$BUILD/logs/$t.log"
  rc=$(cat "$BUILD/logs/$t.rc" 2>/dev/null || echo "?")
  artifacts=("$BUILD/artifacts/$t-"*)
  [[ -e "${artifacts[0]}" ]] || artifacts=()
  summary="$(fuzz_stat "$t" number_of_executed_units) runs"
  summary+=", $(fuzz_stat "$t" average_exec_per_sec) exec/s"
  summary+=", $(fuzz_stat "$t" new_units_added) new units"
  if [[ "$rc" == 0 && ${#artifacts[@]} -eq 0 ]]; then
    echo "fuzz: $t: ok ($summary)"
    continue
  fi
  failed+=("$t")
  echo "fuzz: $t: FAILED (exit $rc; $summary); the end of $log:" >&2
  grep -v '^#[0-9]' "$log" | tail -n 60 >&2 || true
  for a in "${artifacts[@]}"; do
    echo "fuzz: reproduce with: $BUILD/tests/fuzz/$t $a" >&2
    echo "fuzz: minimise with:  $BUILD/tests/fuzz/$t -minimize_crash=1 -runs=100000 $a" >&2
  done
done
echo "fuzz: total $(($(date +%s) - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failures in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crashes"
