#!/usr/bin/env bash
# Load test of a serving replica (`freshet serve --follow`) beside the co-located `freshet serve`:
# the same wrk load (GET /v1/users/<random known user>/recommendations?k=20&exclude_seen=true, as
# benchmarks/serving/load.sh) against
#   colocated  the learner itself, which keeps learning RATE events/s from a second stream
#              (what load.sh measures; no replicas, nothing published);
#   colocated_publishing  colocated, with the learner also publishing to the model topic and
#              Redis (what serving replicas cost the learner's own answers);
#   colocated_idle  the learner with no live stream: what serving alone costs in that process,
#              the most any replica could serve on these cores with the same scoring;
#   replica    one replica, reading each user from Redis and the items from the model topic,
#              while the learner learns RATE events/s on the same cores (replica_learning) or
#              sits idle (replica_idle: the replica's own cost, no learning beside it);
#              replica_nocache: replica_idle with serving_replicas.client_cache=false (every
#              request reads its user from Redis);
#   haproxy2   two replicas behind HAProxy (deploy/haproxy/haproxy.cfg), learner idle;
#   rolling    three replicas behind HAProxy while the learner learns RATE events/s; during the
#              run each replica in turn is stopped (SIGTERM; the second one SIGKILL) and started
#              again, at 1/6, 3/6 and 5/6 of SECONDS: wrk's non_200 and socket_errors count what
#              reached the client;
#   catchup    a replica joining a running learner and replica (learner idle): the seconds from
#              its start to /readyz 200 (--bootstrap: the whole item state from the learner, then
#              the model topic), and whether it then answers 200 sampled users exactly as the
#              learner and the first replica do.
# ITEMS items x d=64 (bpr), 50k users. Everything shares the machine's cores. Prints one JSON line
# per mode and round: QPS, latency percentiles, the CPU seconds per request of the serving
# process(es) (from /proc), and of redis-server and HAProxy, and a replica's Redis reads per
# request (-1: not a replica).
#   benchmarks/serving/replica_load.sh [ITEMS=10000] [SECONDS=10] [CONNECTIONS=32] [RATE=20000]
#                                      [ROUNDS=2] [MODES="colocated replica_idle ..."]
# Environment: WRK_THREADS (1), FRESHET (the binary; default build/cli/freshet), WARMUP (seconds
# of the same load before each measurement, not measured; default 0).
set -euo pipefail
ITEMS=${1:-10000}
DURATION=${2:-10}
CONNS=${3:-32}
RATE=${4:-20000}
ROUNDS=${5:-2}
MODES=${6:-colocated replica_learning replica_idle haproxy2}
USERS=50000
WARMUP=${WARMUP:-0}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
# Replicas take the learner's item state from its admin API (--bootstrap): one token for all.
export FRESHET_ADMIN_TOKEN=replica-load-token
W=$(mktemp -d /tmp/freshet-replica-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.5; [[ -n ${KEEP:-} ]] || rm -rf "$W"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1200); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 0.1; done; echo "replica_load.sh: $1 never ready" >&2; exit 1; }

"$F" generate --output "$W/warm.jsonl" --events 1000000 --users "$USERS" --items "$ITEMS" --seed 1 2>/dev/null
"$F" generate --output "$W/live.jsonl" --events 2000000 --users "$USERS" --items "$ITEMS" --seed 2 2>/dev/null
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$W/redis.log" 2>&1 &
redis_pid=$!
"$F" broker --topics model --partitions 1 >"$W/broker.out" 2>"$W/broker.err" &
for _ in $(seq 100); do grep -q '^bootstrap=' "$W/broker.out" 2>/dev/null && break; sleep 0.1; done
brokers=$(sed -n 's/^bootstrap=//p' "$W/broker.out")
redis="redis://127.0.0.1:$redis_port"

# The learner: warm state first (no HTTP), then serving and publishing.
"$F" serve --data-dir "$W/state" --source "file:$W/warm.jsonl" --format jsonl --exit-when-done \
  --no-http --status-interval 0 2>/dev/null
start_learner() {  # $1: the live stream's rate (0: none); $2: "publish" to publish to replicas
  local sources=(--source "file:$W/warm.jsonl") publish=()
  if [[ $1 != 0 ]]; then sources+=(--source "file:$W/live.jsonl" --rate "$1"); fi
  if [[ ${2:-} == publish ]]; then publish=(--brokers "$brokers" --model-topic model --redis "$redis"); fi
  "$F" serve --data-dir "$W/state" "${sources[@]}" --format jsonl --port 0 --status-interval 0 \
    "${publish[@]}" >"$W/l.out" 2>"$W/l.err" &
  learner_pid=$!
  for _ in $(seq 300); do grep -q '^http=' "$W/l.out" 2>/dev/null && break; sleep 0.1; done
  learner_url="http://$(sed -n 's/^http=//p' "$W/l.out")"
  wait_ready "$learner_url"
}
# SIGTERM: a background job of a script ignores SIGINT unless it installs its own handler
# (freshet does; HAProxy does not).
stop_pid() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }
start_replica() {  # $1: name, $2: port (0: any), $3...: more serve options
  local name=$1 port=${2:-0}
  shift; shift || true
  "$F" serve --follow --brokers "$brokers" --model-topic model --redis "$redis" \
    --bootstrap "$learner_url" --port "$port" --status-interval 0 "$@" >"$W/$name.out" 2>"$W/$name.err" &
  set -- "$name"
  eval "${1}_pid=$!"
  for _ in $(seq 300); do
    grep -q '^http=' "$W/$1.out" 2>/dev/null && break
    kill -0 "$(eval echo "\$${1}_pid")" 2>/dev/null || { cat "$W/$1.err" >&2; exit 1; }
    sleep 0.1
  done
  eval "${1}_url=http://$(sed -n 's/^http=//p' "$W/$1.out")"
  wait_ready "$(eval echo "\$${1}_url")"
}
start_haproxy() {  # $1..$3: the replicas' host:port; sets lb_port and hp once it answers
  lb_port=$(free_port)
  FRESHET_LB_BIND="127.0.0.1:$lb_port" FRESHET_LEARNER="${learner_url#http://}" \
    FRESHET_REPLICA_1="$1" FRESHET_REPLICA_2="$2" FRESHET_REPLICA_3="$3" \
    "$HAPROXY" -W -db -f "$ROOT/deploy/haproxy/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
  hp=$!
  wait_ready "http://127.0.0.1:$lb_port"
  sleep 1.5  # every replica's health checks pass (rise 2)
}
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2; f = 1} END {if (!f) print -1}'; }
hz=$(getconf CLK_TCK)

measure() {  # $1 mode, $2 url, $3 serving pids, $4 learner url (for events applied), $5 extra pids
  local t0 r0 x0 a0 t1 r1 x1 a1
  curl -sf "$2/v1/users/u1/recommendations?k=20" >/dev/null
  if ((WARMUP > 0)); then  # the same load first, unmeasured: caches of every kind warm
    FRESHET_USER_PREFIX=u FRESHET_USER_MIN=0 FRESHET_USER_MAX=$((USERS - 1)) \
      wrk -t"${WRK_THREADS:-1}" -c"$CONNS" -d"${WARMUP}s" -s "$ROOT/benchmarks/serving/recommend.lua" \
      "$2" >/dev/null 2>&1
  fi
  t0=$(ticks $3); r0=$(ticks "$redis_pid"); x0=$(ticks ${5:-}); a0=$(metric "$4" freshet_events_applied)
  g0=$(metric "$2" freshet_replica_redis_reads)
  FRESHET_USER_PREFIX=u FRESHET_USER_MIN=0 FRESHET_USER_MAX=$((USERS - 1)) \
    wrk -t"${WRK_THREADS:-1}" -c"$CONNS" -d"${DURATION}s" -s "$ROOT/benchmarks/serving/recommend.lua" \
    "$2" >"$W/wrk.out" 2>&1
  t1=$(ticks $3); r1=$(ticks "$redis_pid"); x1=$(ticks ${5:-}); a1=$(metric "$4" freshet_events_applied)
  g1=$(metric "$2" freshet_replica_redis_reads)
  echo "measure $1: learner events applied $a0 -> $a1" >&2
  python3 - "$W/wrk.out" "$1" "$ITEMS" "$CONNS" "$t0" "$t1" "$r0" "$r1" "$x0" "$x1" "$hz" "$a0" "$a1" "$DURATION" "$g0" "$g1" <<'PY'
import json, sys
out, mode, items, conns, t0, t1, r0, r1, x0, x1, hz, a0, a1, dur, g0, g1 = sys.argv[1:]
r = json.loads([l for l in open(out) if l.startswith("{")][-1])
n = max(1, r["requests"])
per = lambda a, b: round((int(b) - int(a)) / int(hz) / n * 1e6, 1)
print(json.dumps({"bench": "replica_load", "mode": mode, "items": int(items), "dim": 64, "k": 20,
                  "connections": int(conns), "requests": r["requests"], "non_200": r["non_200"],
                  "socket_errors": r["socket_errors"], "qps": round(r["rps"]), "p50_ms": r["latency_ms"]["p50"],
                  "p99_ms": r["latency_ms"]["p99"],
                  "serving_cpu_us_per_request": per(t0, t1),
                  "redis_cpu_us_per_request": per(r0, r1),
                  "haproxy_cpu_us_per_request": per(x0, x1),
                  "redis_reads_per_request": round((float(g1) - float(g0)) / n, 3) if float(g0) >= 0 else -1,
                  "learned_during_eps": round((float(a1) - float(a0)) / float(dur))}))
PY
}

for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    case $mode in
      colocated)
        start_learner "$RATE"
        measure colocated "$learner_url" "$learner_pid" "$learner_url"
        stop_pid "$learner_pid" ;;
      colocated_publishing)
        start_learner "$RATE" publish
        measure colocated_publishing "$learner_url" "$learner_pid" "$learner_url"
        stop_pid "$learner_pid" ;;
      colocated_idle)
        start_learner 0
        measure colocated_idle "$learner_url" "$learner_pid" "$learner_url"
        stop_pid "$learner_pid" ;;
      replica_learning|replica_idle|replica_nocache)
        start_learner "$([[ $mode == replica_learning ]] && echo "$RATE" || echo 0)" publish
        if [[ $mode == replica_nocache ]]; then
          start_replica r1 0 --set serving_replicas.client_cache=false
        else
          start_replica r1
        fi
        measure "$mode" "$r1_url" "$r1_pid" "$learner_url"
        stop_pid "$r1_pid"; stop_pid "$learner_pid" ;;
      haproxy2)
        start_learner 0 publish
        start_replica r1; start_replica r2
        start_haproxy "${r1_url#http://}" "${r2_url#http://}" "127.0.0.1:1"  # no third
        hpids=$(pgrep -P "$hp" haproxy | tr '\n' ' ')
        measure haproxy2 "http://127.0.0.1:$lb_port" "$r1_pid $r2_pid" "$learner_url" "$hp $hpids"
        stop_pid "$hp"; stop_pid "$r1_pid"; stop_pid "$r2_pid"; stop_pid "$learner_pid" ;;
      catchup)
        start_learner 0 publish
        start_replica r1
        t_start=$(date +%s.%N)
        start_replica r2
        t_ready=$(date +%s.%N)
        same=0
        for u in $(seq 0 250 49999); do
          a=$(curl -s "$learner_url/v1/users/u$u/recommendations?k=20" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["items"], d["user_events"])')
          b=$(curl -s "$r1_url/v1/users/u$u/recommendations?k=20" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["items"], d["user_events"])')
          c=$(curl -s "$r2_url/v1/users/u$u/recommendations?k=20" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["items"], d["user_events"])')
          [[ "$a" == "$b" && "$b" == "$c" ]] && same=$((same + 1))
        done
        boot=$(grep -o 'item state from [^)]*)[^;]*' "$W/r2.err" | head -1)
        python3 -c "import json; print(json.dumps({'bench': 'replica_catchup', 'items': $ITEMS, 'ready_s': round($t_ready - $t_start, 3), 'bootstrap': '''$boot''', 'users_compared': 200, 'users_identical': $same}))"
        stop_pid "$r2_pid"; stop_pid "$r1_pid"; stop_pid "$learner_pid" ;;
      rolling)
        start_learner "$RATE" publish
        start_replica r1; start_replica r2; start_replica r3
        start_haproxy "${r1_url#http://}" "${r2_url#http://}" "${r3_url#http://}"
        (  # the restarts, while wrk runs
          for i in 1 2 3; do
            sleep "$(python3 -c "print($DURATION / 3 - ($i == 1) * $DURATION / 6)")"
            pid_var="r${i}_pid"; url_var="r${i}_url"; port=${!url_var##*:}
            sig=TERM; [[ $i == 2 ]] && sig=KILL
            echo "rolling: SIG$sig r$i at $(date +%T.%N | cut -c1-12)" >&2
            kill -$sig "${!pid_var}"; while kill -0 "${!pid_var}" 2>/dev/null; do sleep 0.05; done
            start_replica "r$i" "$port"
            echo "rolling: r$i ready again at $(date +%T.%N | cut -c1-12)" >&2
            pid_var="r${i}_pid"; echo "${!pid_var}" >"$W/r$i.pid"
          done
        ) &
        restarter=$!
        hpids=$(pgrep -P "$hp" haproxy | tr '\n' ' ')
        measure rolling "http://127.0.0.1:$lb_port" "" "$learner_url" "$hp $hpids"
        wait "$restarter" || true
        stop_pid "$hp"
        for i in 1 2 3; do stop_pid "$(cat "$W/r$i.pid" 2>/dev/null || eval echo "\$r${i}_pid")"; done
        stop_pid "$learner_pid" ;;
    esac
  done
done
