#!/usr/bin/env bash
# Clang's thread-safety analysis over the project: parses every C++ translation unit of
# build/compile_commands.json with clang++ -fsyntax-only -Wthread-safety -Wthread-safety-beta
# -Werror=thread-safety (common/mutex.h says how locks are annotated), plus the libFuzzer targets
# of tests/fuzz/, which only a FRESHET_FUZZ=ON tree lists (they are parsed with the flags of a
# library source and -D_GLIBCXX_ASSERTIONS, as that tree compiles them). Prints each finding once
# and exits non-zero on any, or when a translation unit does not compile with clang.
#
# Only parsing: nothing is built, so a configured tree is enough (the project generates no
# headers). The top CMakeLists.txt exports compile_commands.json in every tree, so after
# scripts/build.sh it is there; without it (or when a CMakeLists.txt is newer) this configures
# build/ as scripts/build.sh does.
# CUDA sources (.cu) are skipped; the host .cc files of kernels/cuda/ are parsed when the tree has
# CUDA on. The project's warning flags (some GCC-only, e.g. -Wno-maybe-uninitialized) are replaced
# by -Wno-everything, so only the analysis speaks; other GCC-only flags clang rejects are dropped.
# -Wthread-safety-beta is on: in clang 14 it is what checks the ABSL_ACQUIRED_BEFORE/AFTER order
# of nested locks. (-Wthread-safety-negative is not: it would want ABSL_LOCKS_EXCLUDED spelt as
# a negative capability on every function that takes a lock.)
#
# Usage: scripts/thread_safety.sh [PATH_PREFIX...]   only the sources under these paths
# Environment:
#   FRESHET_JOBS=N            parallel clang processes (default: the number of cores)
#   FRESHET_CLANG=clang++-14  the compiler (default: clang++-14, else clang++)
#   FRESHET_BUILD_DIR=dir     the tree whose compile_commands.json is read (default: build/)
#
# Takes 6 to 6.5 minutes on 2 shared cores (142 translation units: the 137 C++ sources of a
# build/ with CUDA and benchmarks on, and the 5 fuzz targets).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FRESHET_BUILD_DIR:-$ROOT/build}
JOBS=${FRESHET_JOBS:-$(nproc)}
CLANG=${FRESHET_CLANG:-}
if [[ -z "$CLANG" ]]; then
  CLANG=$(command -v clang++-14 || command -v clang++ || true)
fi
if [[ -z "$CLANG" ]]; then
  echo "thread_safety: clang++ not found (scripts/bootstrap.sh installs Debian's clang 14)" >&2
  exit 1
fi

# A tree configured before a CMakeLists.txt changed may list old sources: configure it again.
db="$BUILD/compile_commands.json"
stale=""
if [[ -f "$db" ]]; then
  stale=$(find "$ROOT" -path "$ROOT/build*" -prune -o \
    \( -name CMakeLists.txt -o -name '*.cmake' \) -newer "$db" -print -quit)
fi
if [[ ! -f "$db" || -n "$stale" ]]; then
  generator=()
  if command -v ninja >/dev/null 2>&1 && [[ ! -f "$BUILD/Makefile" ]]; then generator=(-G Ninja); fi
  cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFRESHET_WERROR=ON \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi

exec python3 - "$ROOT" "$db" "$JOBS" "$CLANG" "$@" <<'PY'
import concurrent.futures
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

root, db_path, jobs, clang = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefixes = [os.path.relpath(os.path.abspath(p), root) for p in sys.argv[5:]]
ANALYSIS = ["-Wno-everything", "-Wthread-safety", "-Wthread-safety-beta", "-Werror=thread-safety",
            "-Werror=thread-safety-beta"]
# GCC options clang 14 rejects ("unknown argument"): dropped.
GCC_ONLY = {"-fno-gnu-unique", "-fno-var-tracking-assignments", "-fconserve-stack", "-fipa-pta"}
GCC_ONLY_PREFIX = ("-fconcepts-diagnostics-depth=", "-fcompare-debug")
# Options with a separate value that only matter for the object file.
DROP_WITH_VALUE = {"-o", "-MF", "-MT", "-MQ"}
DROP = {"-c", "-MD", "-MMD", "-fsyntax-only"}


def clang_args(argv, source):
    """The clang command parsing `source` with the flags of a compile command `argv`."""
    out = [clang]
    args = iter(argv[1:])
    for a in args:
        if a in DROP_WITH_VALUE:
            next(args, None)
        elif a in DROP or a in GCC_ONLY or a.startswith(GCC_ONLY_PREFIX):
            pass
        elif a.startswith("-W") or a.startswith("-pedantic") or a == "-w":
            pass  # replaced by ANALYSIS
        elif os.path.abspath(a) == source:
            pass
        else:
            out.append(a)
    return out + ["-fsyntax-only"] + ANALYSIS + [source]


with open(db_path) as f:
    entries = json.load(f)
units = {}  # source -> (directory, clang argv)
template = None
for e in entries:
    source = os.path.normpath(os.path.join(e["directory"], e["file"]))
    if not source.startswith(root + os.sep) or not source.endswith((".cc", ".cpp", ".cxx")):
        continue  # .cu (nvcc) and anything outside the repository
    argv = e["arguments"] if "arguments" in e else shlex.split(e["command"])
    if "nvcc" in os.path.basename(argv[0]):
        continue
    units.setdefault(source, (e["directory"], clang_args(argv, source)))
    if template is None and os.path.relpath(source, root).startswith("common/"):
        template = (e["directory"], argv, source)
# The fuzz targets: only a FRESHET_FUZZ=ON (clang) tree lists them.
for source in sorted(glob.glob(os.path.join(root, "tests", "fuzz", "*.cc"))):
    if source not in units and template is not None:
        directory, argv, library_source = template
        args = clang_args(argv, library_source)
        args[-1] = source
        units[source] = (directory, args[:-1] + ["-D_GLIBCXX_ASSERTIONS", source])
if prefixes:
    units = {s: u for s, u in units.items()
             if any(os.path.relpath(s, root).startswith(p) for p in prefixes)}
if not units:
    sys.exit("thread_safety: no translation units to check in " + db_path)


def check(source):
    directory, args = units[source]
    p = subprocess.run(args, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return source, p.returncode, p.stdout


# A diagnostic starts at "In file included from" or at a warning/error line not preceded by one;
# notes and source excerpts belong to the diagnostic before them.
DIAG = re.compile(r"^(.+?):(\d+):(\d+): (warning|error|fatal error): (.*)$")


def split_diagnostics(text):
    blocks, current, in_include = [], None, False
    for line in text.splitlines():
        if re.match(r"^\d+ (warning|error)s? generated\.$", line):
            continue
        m = DIAG.match(line)
        if line.startswith("In file included from"):
            if not in_include:
                current = {"lines": [], "key": None}
                blocks.append(current)
            in_include = True
        elif m and not in_include:
            current = {"lines": [], "key": None}
            blocks.append(current)
        if m and current is not None and current["key"] is None:
            current["key"] = line
            current["file"] = os.path.relpath(os.path.normpath(m.group(1)), root)
            current["line"] = int(m.group(2))
            current["analysis"] = "-Wthread-safety" in m.group(5)
            current["error"] = m.group(4) != "warning" and not current["analysis"]
            in_include = False
        elif not line.startswith(("In file included from", "                 from")):
            in_include = False
        if current is not None:
            current["lines"].append(line)
    return [b for b in blocks if b["key"] is not None]


start = time.monotonic()
print(f"thread_safety: {len(units)} translation units, {jobs} at a time, {clang}", flush=True)
seen, findings, broken = set(), [], []
with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    for source, rc, output in pool.map(check, sorted(units)):
        blocks = split_diagnostics(output)
        if rc != 0 and (not blocks or any(b["error"] for b in blocks)):
            broken.append(os.path.relpath(source, root))
        for b in blocks:
            if b["key"] in seen:
                continue
            seen.add(b["key"])
            findings.append(b)
            print("\n".join(b["lines"]), flush=True)
        if rc != 0 and not blocks:
            print(output, flush=True)

elapsed = time.monotonic() - start
analysis = [b for b in findings if b["analysis"]]
print(f"thread_safety: {len(units)} translation units in {elapsed:.0f} s")
if analysis:
    print(f"thread_safety: {len(analysis)} findings:")
    for b in sorted(analysis, key=lambda b: (b["file"], b["line"])):
        print(f"  {b['file']}:{b['line']}: {DIAG.match(b['key']).group(5)}")
if broken:
    print("thread_safety: clang could not compile: " + " ".join(broken))
if analysis or broken:
    sys.exit(1)
print("thread_safety: no findings")
PY
