#!/usr/bin/env bash
# Broker -> learned -> persisted throughput of `freshet serve` (decode + learn + persist), with
# the development broker on the same machine. Produces EVENTS generated events (100k users, 20k
# items) into a 64-partition topic first (the mock broker keeps about 5 MiB per partition), then
# starts serve on a fresh data dir and samples its status line every 0.25 s. Prints one JSON line:
# learned_eps from the first applied event to the last, persisted_eps to the last one stored.
#   benchmarks/stream/serve_ingest.sh [EVENTS=2000000] [ALGO=bpr]
set -euo pipefail
EVENTS=${1:-2000000}
ALGO=${2:-bpr}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=$ROOT/build/cli/freshet
W=$(mktemp -d /tmp/freshet-ingest.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
"$F" generate --output "$W/g.jsonl" --events "$EVENTS" --users 100000 --items 20000 2>/dev/null
"$F" broker --topics events --partitions 64 >"$W/b.out" 2>"$W/b.err" &
for _ in $(seq 100); do grep -q '^bootstrap=' "$W/b.out" && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap=//p' "$W/b.out")
"$F" produce --brokers "$B" --topic events --data "$W/g.jsonl" --format jsonl --quiet 2>&1 | tail -1 >&2
"$F" serve --brokers "$B" --topic events --data-dir "$W/state" --algo "$ALGO" --no-http \
  --status-interval 0.25 >"$W/s.out" 2>"$W/s.err" &
pid=$!
while ! grep -q "\"events_persisted\":$EVENTS," "$W/s.err" 2>/dev/null; do sleep 0.25; done
kill -INT "$pid"; wait "$pid" || true
[[ -n ${VERBOSE:-} ]] && grep status "$W/s.err" >&2
python3 - "$W/s.err" "$EVENTS" "$ALGO" <<'PY'
import json, sys
rows = [json.loads(l.split(" ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("status ")]
n = int(sys.argv[2]); dt = 0.25
first = next(i for i, r in enumerate(rows) if r["events_applied"] > 0)
learned = next(i for i, r in enumerate(rows) if r["events_applied"] == n)
persisted = next(i for i, r in enumerate(rows) if r["events_persisted"] == n)
# The first sample with events already counts part of an interval: start one interval earlier.
t_learn = (learned - first + 1) * dt; t_persist = (persisted - first + 1) * dt
print(json.dumps({"bench": "serve_ingest", "algo": sys.argv[3], "events": n,
                  "learned_eps": round(n / t_learn), "persisted_eps": round(n / t_persist),
                  "learned_s": t_learn, "persisted_s": t_persist}))
PY
