#!/usr/bin/env bash
# Reads while snapshots are created: wrk asks GET /v1/users/<user>/recommendations?k=20 of a
# `freshet serve` holding a large state, first alone for SECONDS, then for SECONDS while a loop
# creates (and deletes) snapshots through POST /admin/snapshots one after another. Prints wrk's
# JSON line for each phase and how many snapshots were created during the second. DATA_DIR is a
# state learnt (d = 64, jsonl) from the file SOURCE, which serve is given again (nothing new is
# left in it, so only the reads and the snapshots run), e.g.
#   freshet generate --output g.jsonl --events 3000000 --users 1000000 --items 100000 --seed 5
#   freshet serve --data-dir state --source file:g.jsonl --format jsonl --exit-when-done \
#     --no-http --set model.dim=64
#   benchmarks/serving/snapshot_reads.sh state g.jsonl [SECONDS=15] [CONNECTIONS=32] [USERS=1000000]
# Environment: FRESHET (the binary; default build/cli/freshet), SERVE_SET (extra --set key=value),
# FRESHET_USER_PREFIX (default "u").
set -euo pipefail
DATA_DIR=${1:?usage: snapshot_reads.sh DATA_DIR SOURCE [SECONDS] [CONNECTIONS] [USERS]}
SOURCE=${2:?usage: snapshot_reads.sh DATA_DIR SOURCE [SECONDS] [CONNECTIONS] [USERS]}
DURATION=${3:-15}
CONNS=${4:-32}
USERS=${5:-1000000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
W=$(mktemp -d /tmp/freshet-snapreads.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
TOKEN=bench-$RANDOM$RANDOM
sets=()
for s in ${SERVE_SET:-}; do sets+=(--set "$s"); done
FRESHET_ADMIN_TOKEN=$TOKEN "$F" serve --data-dir "$DATA_DIR" --source "file:$SOURCE" \
  --format jsonl --port 0 --status-interval 0 --set model.dim=64 "${sets[@]}" \
  >"$W/s.out" 2>"$W/s.err" &
for _ in $(seq 600); do grep -q '^http=' "$W/s.out" 2>/dev/null && break; sleep 0.1; done
url="http://$(sed -n 's/^http=//p' "$W/s.out")"
curl -sf "$url/v1/users/${FRESHET_USER_PREFIX:-u}1/recommendations?k=20" >/dev/null
load() {
  FRESHET_USER_PREFIX=${FRESHET_USER_PREFIX:-u} FRESHET_USER_MIN=0 FRESHET_USER_MAX=$((USERS - 1)) \
    wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$ROOT/benchmarks/serving/recommend.lua" "$url" 2>&1 |
    grep '^{'
}
echo "{\"phase\":\"alone\",\"wrk\":$(load)}"
(
  n=0
  while true; do
    curl -sf -X POST -H "Authorization: Bearer $TOKEN" "$url/admin/snapshots" -o "$W/snap.json" || break
    id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$W/snap.json")
    curl -sf -X DELETE -H "Authorization: Bearer $TOKEN" "$url/admin/snapshots/$id" >/dev/null || true
    n=$((n + 1)); echo "$n" >"$W/snapshots"
  done
) &
loop=$!
echo "{\"phase\":\"snapshots\",\"wrk\":$(load),\"snapshots_created\":$(cat "$W/snapshots" 2>/dev/null || echo 0)}"
kill "$loop" 2>/dev/null || true
