#!/usr/bin/env bash
# Replicas over Kafka on the CPU: WORLD `freshet serve` ranks (bpr, d = 64) consume a topic of
# EVENTS generated events (USERS users x ITEMS items) from the development broker, each its share
# of the partitions, exchanging item-model changes every SYNC_MS over a second topic. Prints one
# JSON line: wall time until every event was learnt, events/s for the group, and each rank's
# exchanges, last exchange time and rows received. WORLD=1 runs one engine alone (no exchange).
# On one machine the ranks share its cores: this measures what the exchange costs, not how the
# group scales across nodes.
#   benchmarks/serving/replicas.sh [WORLD=2] [EVENTS=400000] [ITEMS=10000] [SYNC_MS=100]
set -euo pipefail
WORLD=${1:-2}
EVENTS=${2:-400000}
ITEMS=${3:-10000}
SYNC_MS=${4:-100}
USERS=50000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
W=$(mktemp -d /tmp/freshet-replicas.XXXXXX)
ranks_pids=()
cleanup() {
  # The ranks first (their last exchange needs the broker), then the broker.
  [[ ${#ranks_pids[@]} -gt 0 ]] && kill "${ranks_pids[@]}" 2>/dev/null && wait "${ranks_pids[@]}" 2>/dev/null
  kill "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
"$F" broker --topics clicks --partitions 8 >"$W/broker.out" 2>/dev/null &
broker_pid=$!
for _ in $(seq 100); do grep -q '^bootstrap=' "$W/broker.out" 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap=//p' "$W/broker.out")
"$F" generate --output "$W/gen.jsonl" --events "$EVENTS" --users "$USERS" --items "$ITEMS" \
  --seed 3 2>/dev/null
"$F" produce --brokers "$B" --topic clicks --data "$W/gen.jsonl" --format jsonl 2>/dev/null
start=$(date +%s.%N)
for r in $(seq 0 $((WORLD - 1))); do
  "$F" serve --brokers "$B" --topic clicks --group bench --data-dir "$W/state$r" --port 0 \
    --status-interval 0 --set replicas.world_size="$WORLD" --set replicas.rank="$r" \
    --set replicas.rendezvous="exchange-$$" --set replicas.sync_ms="$SYNC_MS" \
    >"$W/out$r" 2>"$W/err$r" &
  ranks_pids+=($!)
done
metric() {  # metric RANK NAME
  local url
  url=$(sed -n 's/^http=//p' "$W/out$1")
  [[ -z "$url" ]] && { echo 0; return; }
  curl -s "http://$url/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}
while true; do
  total=0
  for r in $(seq 0 $((WORLD - 1))); do
    total=$(python3 -c "print(int($total + $(metric "$r" freshet_events_applied)))")
  done
  [[ "$total" -ge "$EVENTS" ]] && break
  for r in "${!ranks_pids[@]}"; do
    if ! kill -0 "${ranks_pids[$r]}" 2>/dev/null; then
      echo "rank $r stopped:" >&2; tail -n 3 "$W/err$r" >&2; exit 1
    fi
  done
  sleep 0.2
done
end=$(date +%s.%N)
ranks=""
for r in $(seq 0 $((WORLD - 1))); do
  ranks+="{\"rank\":$r,\"events\":$(metric "$r" freshet_events_applied),"
  ranks+="\"exchanges\":$(metric "$r" freshet_replica_exchanges),"
  ranks+="\"last_exchange_s\":$(metric "$r" freshet_replica_last_exchange_seconds),"
  ranks+="\"rows_received\":$(metric "$r" freshet_replica_rows_received)},"
done
python3 -c "
import json
s, e = $start, $end
print(json.dumps({'bench': 'replicas_kafka', 'world': $WORLD, 'events': $EVENTS, 'items': $ITEMS,
                  'sync_ms': $SYNC_MS, 'seconds': round(e - s, 2),
                  'events_per_s': round($EVENTS / (e - s)), 'ranks': [${ranks%,}]}))"
