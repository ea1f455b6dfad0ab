#!/usr/bin/env bash
# End-to-end exactly-once through Kafka: `freshet broker`, `freshet produce` of a generated stream
# at a steady rate while `freshet serve --brokers ...` consumes it; serve is killed with SIGKILL
# KILLS times in the middle and restarted each time. At the end events_applied must equal the
# stream's length and no event may have been applied twice (per-user counters against the file).
#   scripts/kafka_exactly_once.sh [EVENTS=500000] [KILLS=2] [RATE=20000]
set -euo pipefail
EVENTS=${1:-500000}
KILLS=${2:-2}
RATE=${3:-20000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
F=$ROOT/build/cli/freshet
W=$(mktemp -d /tmp/freshet-kafka-eo.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$F" generate --output "$W/g.jsonl" --events "$EVENTS" --users 50000 --items 20000 --seed 11 2>/dev/null
"$F" broker --topics events --partitions 64 >"$W/b.out" 2>"$W/b.err" &
for _ in $(seq 100); do grep -q '^bootstrap=' "$W/b.out" && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap=//p' "$W/b.out")
"$F" produce --brokers "$B" --topic events --data "$W/g.jsonl" --format jsonl --rate "$RATE" --quiet \
  >"$W/p.log" 2>&1 &
producer=$!
# A SIGKILLed consumer stays in the group until its session times out; a short session timeout
# lets the restarted one get the partitions back sooner.
SERVE=("$F" serve --brokers "$B" --topic events --data-dir "$W/state" --no-http --status-interval 0
       --kafka-property session.timeout.ms=3000 --kafka-property heartbeat.interval.ms=300)
applied() { "$F" inspect --data-dir "$W/state" --json 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["events_applied"])' 2>/dev/null || echo 0; }
for k in $(seq "$KILLS"); do
  "${SERVE[@]}" >/dev/null 2>>"$W/s.err" &
  pid=$!
  # Group join (~3 s against the mock, longer after a kill: the dead member's session must end)
  # plus some ingestion.
  sleep $((6 + 8 * (k - 1)))
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  echo "SIGKILL $k: $(applied) events stored"
done
"${SERVE[@]}" >/dev/null 2>>"$W/s.err" &
pid=$!
wait "$producer"
echo "producer: $(tail -1 "$W/p.log")"
until [[ $(applied) -ge $EVENTS ]]; do sleep 0.5; done
sleep 1
kill -INT "$pid"; wait "$pid" || true
"$F" inspect --data-dir "$W/state" --json >"$W/final.json"
python3 - "$W" "$EVENTS" <<'PY'
import collections, json, sys
w, n = sys.argv[1], int(sys.argv[2])
state = json.load(open(f"{w}/final.json"))
users = collections.Counter(json.loads(l)["user"] for l in open(f"{w}/g.jsonl"))
ok = state["events_applied"] == n and state["users"] == len(users)
print(json.dumps({"events": n, "events_applied": state["events_applied"], "users": state["users"],
                  "expected_users": len(users), "exactly_once": ok}))
sys.exit(0 if ok else 1)
PY
