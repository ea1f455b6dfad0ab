#!/usr/bin/env bash
# What serving replicas cost in Redis: the learner (bpr, d=64) learns a generated stream of USERS
# users and publishes every changed user's state to a real redis-server; then
#   - bytes per user: MEMORY USAGE of SAMPLE random user keys (the value and Redis's overhead per
#     key), and used_memory / keys over the whole keyspace;
#   - Redis commands per learned event: the learner's SETs over the events it learnt, once with the
#     stream as fast as it goes and once at RATE events/s (fewer events of one user fall into one
#     2 ms publishing round).
# Prints one JSON line per run.
#   benchmarks/serving/replica_redis_cost.sh [USERS=1000000] [EVENTS=3000000] [RATE=20000]
# Environment: FRESHET (the binary; default build/cli/freshet).
set -euo pipefail
USERS=${1:-1000000}
EVENTS=${2:-3000000}
RATE=${3:-20000}
ITEMS=20000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
W=$(mktemp -d /tmp/freshet-redis-cost.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.5; rm -rf "$W"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$W/redis.log" 2>&1 &
"$F" broker --topics model --partitions 1 >"$W/broker.out" 2>/dev/null &
for _ in $(seq 100); do grep -q '^bootstrap=' "$W/broker.out" 2>/dev/null && break; sleep 0.1; done
brokers=$(sed -n 's/^bootstrap=//p' "$W/broker.out")
"$F" generate --output "$W/events.jsonl" --events "$EVENTS" --users "$USERS" --items "$ITEMS" \
  --seed 5 2>/dev/null

run() {  # $1: label, $2: rate (0: unlimited)
  redis-cli -p "$port" flushall >/dev/null
  rm -rf "$W/state"
  "$F" serve --data-dir "$W/state" --source "file:$W/events.jsonl" --format jsonl --rate "$2" \
    --port 0 --status-interval 0 --brokers "$brokers" --model-topic model \
    --redis "redis://127.0.0.1:$port" >"$W/l.out" 2>"$W/l.err" &
  local pid=$!
  for _ in $(seq 300); do grep -q '^http=' "$W/l.out" 2>/dev/null && break; sleep 0.1; done
  local url="http://$(sed -n 's/^http=//p' "$W/l.out")"
  local metric='curl -s $url/metrics | awk -v m=$1 '"'"'$1 == m {print $2}'"'"''
  if [[ $2 == 0 ]]; then
    while ! grep -q "done" <(curl -s "$url/metrics" | awk '$1 == "freshet_events_applied" && $2 >= '"$EVENTS"' {print "done"}'); do sleep 0.5; done
  else
    sleep 10
  fi
  sleep 0.5  # the last publishing rounds
  local applied sets
  applied=$(curl -s "$url/metrics" | awk '$1 == "freshet_events_applied" {print $2}')
  sets=$(curl -s "$url/metrics" | awk '$1 == "freshet_publish_redis_commands" {print $2}')
  kill -INT "$pid"; wait "$pid" || true
  python3 - "$1" "$2" "$port" "$applied" "$sets" <<'PY'
import json, random, subprocess, sys
label, rate, port, applied, sets = sys.argv[1:]
cli = lambda *a: subprocess.run(["redis-cli", "-p", port, *a], capture_output=True, text=True).stdout
keys = int(cli("dbsize").strip())
info = dict(l.split(":", 1) for l in cli("info", "memory").splitlines() if ":" in l)
sample = [cli("randomkey").strip() for _ in range(1000)]
usage = [int(cli("memory", "usage", k, "samples", "0").strip() or 0) for k in sample if k]
used = int(info["used_memory"]) - 0
print(json.dumps({"bench": "replica_redis_cost", "run": label, "rate": float(rate),
                  "events_learnt": int(float(applied)), "redis_sets": int(float(sets)),
                  "sets_per_event": round(float(sets) / max(1.0, float(applied)), 3),
                  "user_keys": keys,
                  "memory_usage_bytes_per_user_mean": round(sum(usage) / max(1, len(usage))),
                  "memory_usage_bytes_per_user_p99": sorted(usage)[int(len(usage) * 0.99)] if usage else 0,
                  "used_memory_bytes": int(info["used_memory"]),
                  "used_memory_per_user": round(int(info["used_memory"]) / max(1, keys)),
                  "used_memory_for_1m_users_gb": round(int(info["used_memory"]) / max(1, keys) * 1e6 / 1e9, 3)}))
PY
}
run unlimited 0
run "rate" "$RATE"
