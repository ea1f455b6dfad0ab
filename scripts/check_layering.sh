#!/usr/bin/env bash
# Checks the layering of ARCHITECTURE.md ("Layers") from the #include lines: each folder may
# include only the project folders below it. Exits 1 naming every include that breaks a rule.
# Run by CTest (test "layering") and usable alone: scripts/check_layering.sh [REPO_ROOT].
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# folder -> the project folders its sources may include (besides itself).
declare -A allowed=(
  [common]=""
  [config]="common"
  [stream]="common config"
  [kernels]="common config"
  [learner]="common config kernels stream"
  [store]="common config stream"
  [engine]="common config kernels learner store stream"
  [serving]="common config engine stream"
  [cli]="common config engine kernels learner serving store stream"
)
# Headers under an internal/ folder belong to their top folder alone. The serving tier sees the
# stream stage only through its top-level headers (events, their codec and validation), not the
# adapters in its subfolders (Kafka, files' parsers, the generator).
declare -A no_subfolders_of=(
  [serving]="stream store"
)
project="common config stream kernels learner store engine serving cli"

status=0
for folder in $project; do
  [[ -d $folder ]] || continue
  while IFS= read -r hit; do
    file=${hit%%:*}
    target=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${hit#*:}")
    top=${target%%/*}
    [[ " $project " == *" $top "* ]] || continue  # a third-party header
    [[ $top == "$folder" ]] && continue
    if [[ " ${allowed[$folder]} " != *" $top "* ]]; then
      echo "layering: $file includes $target, but $folder/ may include only: ${allowed[$folder]:-nothing}"
      status=1
      continue
    fi
    if [[ $target == */internal/* ]]; then
      echo "layering: $file includes $target, internal to $top/"
      status=1
    fi
    rest=${target#*/}
    if [[ $rest == */* && " ${no_subfolders_of[$folder]:-} " == *" $top "* ]]; then
      echo "layering: $file includes $target; $folder/ may use only the top-level headers of $top/"
      status=1
    fi
  done < <(grep -rnE '^#include "[a-z_]+/' "$folder" --include='*.h' --include='*.cc' \
             --include='*.cu' --include='*.cuh' | sed -E 's/^([^:]+):[0-9]+:/\1:/')
done
if [[ $status == 0 ]]; then echo "layering: ok"; fi
exit $status
