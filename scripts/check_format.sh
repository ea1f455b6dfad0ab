#!/usr/bin/env bash
# Checks that every C++ and CUDA source the repository tracks is formatted as .clang-format says
# (Google style, 100 columns): clang-format --dry-run -Werror, with Debian's clang-format 14.
# Prints each file that differs and exits 1; fix with
#   git ls-files '*.h' '*.cc' '*.cu' '*.cuh' | xargs clang-format-14 -i
# Usage: scripts/check_format.sh [REPO_ROOT]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
CLANG_FORMAT=${FRESHET_CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
if [[ -z "$CLANG_FORMAT" ]]; then
  echo "check_format: clang-format not found (scripts/bootstrap.sh installs Debian's clang-format)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.h' '*.cc' '*.cu' '*.cuh')
bad=()
for f in "${files[@]}"; do
  if ! "$CLANG_FORMAT" --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
  printf 'check_format: not formatted: %s\n' "${bad[@]}"
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ (fix: xargs clang-format-14 -i on them)"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
