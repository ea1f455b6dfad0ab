#!/usr/bin/env bash
# Catalog load at scale: writes a JSON-lines catalog of ITEMS items (title ~40 bytes, a category
# of 1-3 genres, a year), starts `freshet serve --catalog` on a fresh data directory (the catalog
# is parsed, merged and written to the store), then again on the same directory (loaded from the
# store; the file, unchanged, writes nothing). Prints one JSON line: seconds for each start's
# catalog steps (from serve's log: the load from the store plus the file's parse and merge),
# resident memory with and without the catalog, and bytes per
# item by the process's RSS and by the catalog's own count (freshet_catalog_bytes).
#   benchmarks/catalog/load.sh [ITEMS=1000000]
# Environment: FRESHET (the binary; default build/cli/freshet).
set -euo pipefail
ITEMS=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
F=${FRESHET:-$ROOT/build/cli/freshet}
W=$(mktemp -d /tmp/freshet-catalog.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
python3 - "$W/catalog.jsonl" "$ITEMS" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Documentary"]
rng = random.Random(1)
with open(path, "w") as f:
    for i in range(n):
        words = " ".join(rng.choice(["The", "Night", "Return", "of", "Blue", "River", "Last",
                                     "Summer", "City", "Stars"]) for _ in range(5))
        f.write(json.dumps({"item": f"i{i}", "title": f"{words} ({1950 + i % 70})",
                            "category": rng.sample(genres, rng.randint(1, 3)),
                            "year": 1950 + i % 70}) + "\n")
PY
# Ten events, so the server has a source and a model.
for i in $(seq 10); do echo "{\"user\":\"u$i\",\"item\":\"i$i\",\"ts\":$((1700000000000 + i))}"; done >"$W/events.jsonl"

start_serve() {  # $1: extra flags; prints "catalog_seconds rss_bytes catalog_bytes"
  "$F" serve --data-dir "$W/state" --source "file:$W/events.jsonl" --format jsonl --port 0 \
    --status-interval 0 $1 >"$W/s.out" 2>"$W/s.err" &
  local pid=$!
  for _ in $(seq 1200); do grep -q '^http=' "$W/s.out" 2>/dev/null && break; sleep 0.1; done
  local url="http://$(sed -n 's/^http=//p' "$W/s.out")"
  for _ in $(seq 600); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done
  # The catalog's lines in serve's log: loaded from the store, then the file read and merged.
  local secs
  secs=$(python3 - "$W/s.err" <<'PY'
import re, sys
total = 0.0
for line in open(sys.argv[1]):
    m = re.search(r"catalog.* in ([0-9.]+)(ms|s)?$", line.strip())
    if m:
        total += float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
print(total)
PY
)
  local m
  m=$(curl -s "$url/metrics")
  local rss bytes
  rss=$(awk '$1 == "freshet_resident_memory_bytes" {print $2}' <<<"$m")
  bytes=$(awk '$1 == "freshet_catalog_bytes" {print $2}' <<<"$m")
  # Stopped (and its directory lock released) before the caller starts the next one.
  kill -INT "$pid"; wait "$pid" || true
  echo "${secs:-0} ${rss:-0} ${bytes:-0}"
}
read -r _ rss_without _ < <(start_serve "")
rm -rf "$W/state"
read -r first rss_first bytes_first < <(start_serve "--catalog $W/catalog.jsonl")
read -r second rss_second bytes_second < <(start_serve "--catalog $W/catalog.jsonl")
python3 - "$ITEMS" "$first" "$second" "$rss_without" "$rss_second" "$bytes_second" <<'PY'
import json, sys
items, first, second, without, rss, counted = sys.argv[1:]
items = int(items)
print(json.dumps({"bench": "catalog_load", "items": items,
                  "first_start_s": float(first), "restart_s": float(second),
                  "rss_without_mb": round(float(without) / 2**20, 1),
                  "rss_with_mb": round(float(rss) / 2**20, 1),
                  "rss_bytes_per_item": round((float(rss) - float(without)) / items, 1),
                  "catalog_bytes_per_item": round(float(counted) / items, 1)}))
PY
