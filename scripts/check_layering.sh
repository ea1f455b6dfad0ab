#!/usr/bin/env bash
# Checks the layering of ARCHITECTURE.md ("Layers") from the #include lines: each folder may
# include only the project folders below it, and RocksDB's headers stay inside store/rocksdb/.
# Exits 1 naming every include that breaks a rule.
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

# RocksDB is the store's business alone: outside store/rocksdb/ no project source includes a
# RocksDB header ("rocksdb/..." or <rocksdb/...>), nor a store/rocksdb/ header that includes one
# (store/rocksdb/state_store.h only forward-declares RocksDB's types). tests/ and benchmarks/ are
# not checked: they may reach past the store (fault injection, raw databases).
rocksdb_include='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]rocksdb/'
rocksdb_headers=""
if [[ -d store/rocksdb ]]; then
  rocksdb_headers=$(grep -lE "$rocksdb_include" -r store/rocksdb --include='*.h' | sort || true)
fi
for folder in $project; do
  [[ -d $folder ]] || continue
  while IFS= read -r hit; do
    file=${hit%%:*}
    [[ $file == store/rocksdb/* ]] && continue
    target=$(sed -E 's/.*include[[:space:]]*[<"]([^">]+)[">].*/\1/' <<<"${hit#*:}")
    echo "layering: $file includes $target; only store/rocksdb/ may include RocksDB's headers"
    status=1
  done < <(grep -rnE "$rocksdb_include" "$folder" --include='*.h' --include='*.cc' \
             --include='*.cu' --include='*.cuh' | sed -E 's/^([^:]+):[0-9]+:[[:space:]]*/\1:/')
  for header in $rocksdb_headers; do
    while IFS= read -r file; do
      [[ $file == store/rocksdb/* ]] && continue
      echo "layering: $file includes $header, which includes RocksDB's headers; only store/rocksdb/ may"
      status=1
    done < <(grep -rlF "#include \"$header\"" "$folder" --include='*.h' --include='*.cc' \
               --include='*.cu' --include='*.cuh' || true)
  done
done
if [[ $status == 0 ]]; then echo "layering: ok"; fi
exit $status
