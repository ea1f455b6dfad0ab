#!/usr/bin/env bash
# Load test of the serving tier: wrk requests GET /v1/users/<random known user>/recommendations
# ?k=20&exclude_seen=true against `freshet serve` holding ITEMS items x d=64 (bpr, or ALGO),
# while the learner keeps ingesting RATE events/s from a second stream. wrk, the server and the
# learner share the machine's cores. Prints one JSON line: QPS, latency percentiles, and the server's CPU
# seconds per request (from /proc, so the share wrk takes is not counted).
#   benchmarks/serving/load.sh [ITEMS=10000] [SECONDS=10] [CONNECTIONS=32] [RATE=20000]
# Environment: WRK_THREADS (1), SERVE_SET (extra --set key=value for both serves, the warm-up's
# and the measured one's, space-separated), ALGO (the model: bpr), FRESHET (the binary; default
# build/cli/freshet), WARM_EVENTS (events of the warm-up stream: 1000000).
set -euo pipefail
ITEMS=${1:-10000}
DURATION=${2:-10}
CONNS=${3:-32}
RATE=${4:-20000}
USERS=50000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
W=$(mktemp -d /tmp/freshet-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
# Warm-up stream: every item and user seen; then a live stream the learner consumes under load.
"$F" generate --output "$W/warm.jsonl" --events "${WARM_EVENTS:-1000000}" --users "$USERS" \
  --items "$ITEMS" --seed 1 2>/dev/null
"$F" generate --output "$W/live.jsonl" --events 2000000 --users "$USERS" --items "$ITEMS" --seed 2 2>/dev/null
sets=()
for s in ${SERVE_SET:-}; do sets+=(--set "$s"); done
"$F" serve --algo "${ALGO:-bpr}" --data-dir "$W/state" --source "file:$W/warm.jsonl" --format jsonl \
  --exit-when-done --no-http --status-interval 0 "${sets[@]}" 2>/dev/null
"$F" serve --algo "${ALGO:-bpr}" --data-dir "$W/state" --source "file:$W/warm.jsonl" \
  --source "file:$W/live.jsonl" --format jsonl --rate "$RATE" --port 0 --status-interval 0 "${sets[@]}" >"$W/s.out" 2>"$W/s.err" &
pid=$!
for _ in $(seq 300); do grep -q '^http=' "$W/s.out" 2>/dev/null && break; sleep 0.1; done
url="http://$(sed -n 's/^http=//p' "$W/s.out")"
# The server answers from the loaded state while it opens its sources (decoding the 2M-event live
# file takes seconds of CPU); measure only once it is ready and learning at RATE.
for _ in $(seq 1200); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/readyz" >/dev/null || { echo "load.sh: the server never became ready" >&2; exit 1; }
curl -sf "$url/v1/users/u1/recommendations?k=20" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m {print $2; f = 1} END {if (!f) print -1}'; }
applied() { metric freshet_events_applied; }
# Batched scoring during the run: passes over the items, queries they answered, item groups packed.
scoring() { echo "$(metric freshet_scoring_batches),$(metric freshet_scoring_batched_queries),$(metric freshet_scoring_item_groups_packed)"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); a0=$(applied); s0=$(scoring)
FRESHET_USER_PREFIX=u FRESHET_USER_MIN=0 FRESHET_USER_MAX=$((USERS - 1)) \
  wrk -t"${WRK_THREADS:-1}" -c"$CONNS" -d"${DURATION}s" -s "$ROOT/benchmarks/serving/recommend.lua" \
  "$url" >"$W/wrk.out" 2>&1
t1=$(ticks); a1=$(applied); s1=$(scoring)
kill -INT "$pid"; wait "$pid" || true
python3 - "$W/wrk.out" "$ITEMS" "$CONNS" "$t0" "$t1" "$hz" "$a0" "$a1" "$DURATION" "$s0" "$s1" <<'PY'
import json, os, sys
out, items, conns, t0, t1, hz, a0, a1, dur, s0, s1 = sys.argv[1:]
# Deltas of the scoring counters; null where the server does not export one.
s0 = [float(x) for x in s0.split(",")]
s1 = [float(x) for x in s1.split(",")]
delta = [None if a < 0 or b < 0 else b - a for a, b in zip(s0, s1)]
line = [l for l in open(out) if l.startswith("{")][-1]
r = json.loads(line)
cpu = (int(t1) - int(t0)) / int(hz)
print(json.dumps({"bench": "serve_load", "algo": os.environ.get("ALGO", "bpr"),
                  "items": int(items), "dim": 64, "k": 20,
                  "connections": int(conns), "requests": r["requests"], "non_200": r["non_200"],
                  "qps": round(r["rps"]), "p50_ms": r["latency_ms"]["p50"],
                  "p99_ms": r["latency_ms"]["p99"], "max_ms": r["latency_ms"]["max"],
                  "server_cpu_s_per_request": round(cpu / max(1, r["requests"]), 8),
                  "learned_during_eps": round((float(a1) - float(a0)) / float(dur)),
                  "scoring_batches": delta[0], "batched_queries": delta[1],
                  "item_groups_packed": delta[2]}))
PY
