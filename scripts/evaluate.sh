#!/usr/bin/env bash
# Offline evaluation: replays MovieLens 100K (or, where it is not available, a generated
# clickstream) through every model, test-then-train, with a live progress line, a summary table and
# an HTML/JSON report in reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

data=${FRESHET_DATA:-../shared/data/ml-100k/u.data}
if [[ -f "$data" ]]; then
  name=movielens-100k
  format=movielens-100k
  echo "MovieLens 100K from GroupLens (F. M. Harper and J. A. Konstan, ACM TiiS 5(4), 2015)."
else
  echo "MovieLens 100K not found at $data: replaying a generated clickstream instead."
  name=generated
  format=jsonl
  data=build/generated-200k.jsonl
  [[ -f "$data" ]] || build/cli/freshet generate --events 200000 --users 5000 --items 3000 --output "$data"
fi
build/cli/freshet replay --data "$data" --format "$format" --algo bpr,ials,cooc,hybrid,blend \
  --report "reports/$name" "$@"
echo "report: reports/$name/report.html"
