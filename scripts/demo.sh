#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs freshet live on one machine:
#   1. `freshet broker`   a development Kafka broker (librdkafka's mock cluster) on 127.0.0.1
#   2. `freshet produce`  MovieLens 100K (or a generated clickstream) into it, in time order, at a
#                         steady rate (DEMO_RATE events/s, default 500)
#   3. `freshet serve`    consumes, learns, persists to RocksDB (DEMO_DIR) and serves HTTP
# opens with the dashboard's address (http://.../dashboard), and every few seconds prints a few
# users' recommendations, by title, as they change, with how long ago their latest event was
# learnt. Ctrl-C stops everything cleanly (serve writes its state first).
# DEMO_SECONDS=N stops by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
F=build/cli/freshet

RATE=${DEMO_RATE:-500}
DIR=${DEMO_DIR:-$(mktemp -d /tmp/freshet-demo.XXXXXX)}
SECONDS_LIMIT=${DEMO_SECONDS:-0}
data=${FRESHET_DATA:-../shared/data/ml-100k/u.data}
catalog=()
if [[ -f "$data" ]]; then
  format=movielens-100k
  # Titles and genres for the answers (u.item beside the ratings).
  [[ -f "$(dirname "$data")/u.item" ]] && catalog=(--catalog "$(dirname "$data")/u.item")
  echo "data: MovieLens 100K from GroupLens (F. M. Harper and J. A. Konstan, ACM TiiS 5(4), 2015)"
  # The first users to appear in time order, so their recommendations change from the start.
  mapfile -t users < <(sort -n -k4,4 "$data" | awk '!seen[$1]++ {print $1}' | head -3)
else
  format=jsonl
  data=$DIR/generated.jsonl
  echo "data: MovieLens 100K not found; a generated clickstream ($data)"
  $F generate --events 200000 --users 2000 --items 3000 --output "$data"
  mapfile -t users < <(head -200 "$data" | sed -E 's/.*"user":"?([^",]+)"?.*/\1/' | awk '!seen[$1]++' | head -3)
fi

pids=()
stop() {
  trap - INT TERM
  echo; echo "stopping: serve writes its state, then the producer and the broker stop"
  [[ -n ${serve_pid:-} ]] && kill -INT "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "state kept in $DIR/state:  $F inspect --data-dir $DIR/state"
  exit 0
}
trap stop INT TERM

$F broker --topics events --partitions 4 >"$DIR/broker.out" 2>"$DIR/broker.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^bootstrap=' "$DIR/broker.out" 2>/dev/null && break; sleep 0.1; done
brokers=$(sed -n 's/^bootstrap=//p' "$DIR/broker.out")
[[ -n $brokers ]] || { echo "the broker did not start: $(cat "$DIR/broker.log")"; stop; }
echo "broker: $brokers (development mock; real Kafka works the same via --brokers)"

$F produce --brokers "$brokers" --topic events --data "$data" --format "$format" --rate "$RATE" \
  --quiet >"$DIR/produce.log" 2>&1 &
pids+=($!)
$F serve --brokers "$brokers" --topic events --data-dir "$DIR/state" --port 0 "${catalog[@]}" \
  --status-interval 0 >"$DIR/serve.out" 2>"$DIR/serve.log" &
serve_pid=$!
for _ in $(seq 200); do grep -q '^http=' "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
http=$(sed -n 's/^http=//p' "$DIR/serve.out")
[[ -n $http ]] || { echo "serve did not start: $(tail -5 "$DIR/serve.log")"; stop; }
echo "dashboard: http://$http/dashboard  (live charts; watch user ${users[0]} learn in the user view)"
echo "serve: http://$http  (try: curl 'http://$http/v1/users/${users[0]}/recommendations?k=5&fields=title')"
echo "producing $RATE events/s; watching users ${users[*]}; Ctrl-C to stop"

start=$(date +%s)
while true; do
  sleep 3
  metric() { curl -s "http://$http/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
  echo
  printf '[%3ss] events learnt %s, model version %s, consumer lag %s\n' "$(( $(date +%s) - start ))" \
    "$(metric freshet_events_applied)" "$(metric freshet_model_version)" \
    "$(metric freshet_consumer_lag_messages)"
  for u in "${users[@]}"; do
    curl -s "http://$http/v1/users/$u/recommendations?k=5&fields=title" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ago = r["applied_ms_ago"]
fresh = f"latest event learnt {ago:.0f} ms ago" if ago is not None else "not seen yet"
user, events, source = r["user"], r["user_events"], r["source"]
print(f"  user {user:>6}: {events:4d} events, {fresh:32s} {source}")
for i in r["items"]:
    print("      " + i.get("title", i["item"]))' || true
  done
  if (( SECONDS_LIMIT > 0 && $(date +%s) - start >= SECONDS_LIMIT )); then stop; fi
  kill -0 "$serve_pid" 2>/dev/null || { echo "serve exited: $(tail -3 "$DIR/serve.log")"; stop; }
done
