#!/usr/bin/env bash
# Runs the README's commands the way a new user would: in a bare Debian 12 (debootstrap
# --variant=minbase bookworm), as root, with an empty environment (env -i: PATH with
# /usr/local/cuda/bin, HOME=/root), on a clean `git clone` of this repository's committed HEAD.
# The CUDA toolkit of this machine (/usr/local/cuda -> /usr/local/cuda-X.Y) is bind-mounted
# read-only at the same path, and ../shared/data (MovieLens) read-only at /work/shared/data, the
# clone being /work/main.
#
# The bare root is built once and cached (ROOT_CACHE, default /var/cache/freshet-fresh-debian):
# debootstrap takes a few minutes. Each run starts from it unchanged: the run's writes (the Debian
# packages scripts/bootstrap.sh installs, the clone, build/) go to an overlay layer that is thrown
# away afterwards; the downloaded .deb files are kept in ROOT_CACHE/apt-archives.
#
# Needs root, debootstrap (installed with apt-get when missing), git, and Debian's mirror.
#
# Usage: scripts/fresh_debian.sh [options] [-- PATHSPEC...]
#   (no option)   ./scripts/test.sh in the clone
#   --demo        DEMO_SECONDS=${DEMO_SECONDS:-20} ./scripts/demo.sh instead
#   --run CMD     run CMD (bash -c, in the clone) instead
#   --shell       an interactive shell in the clone instead
#   --worktree    apply this working tree's uncommitted changes to the clone: the diff of tracked
#                 files against HEAD and the untracked files git does not ignore; PATHSPECs after
#                 -- limit both (e.g. -- cmake kernels/cuda CMakeLists.txt)
#   --keep        keep the run's layer (installed packages, clone, build/) in ROOT_CACHE/run
#   --reuse       run in the layer a previous --keep left, as it is (no new clone)
#   --no-cuda     do not mount the CUDA toolkit (a machine without one)
#   --cuda DIR    the toolkit to mount (default: where /usr/local/cuda points)
#   --rebuild     build the bare root again
#   --jobs N      FRESHET_JOBS for the run (default: the environment's FRESHET_JOBS, else nproc)
# Environment: ROOT_CACHE, DEBIAN_MIRROR (default http://deb.debian.org/debian), FRESHET_JOBS,
# DEMO_SECONDS.
#
# Timings on a 2-core machine with FRESHET_JOBS=2 (measured with CUDA 13.0 mounted): building the
# root ~1 min (debootstrap, once); ./scripts/test.sh inside it 15-20 min on an otherwise idle
# machine (the packages and the Release build with CUDA ~7 min, CTest ~1.5, the ThreadSanitizer
# build and run ~3.5, the fuzzers ~3.5), 40 min and more while other builds share the cores.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ROOT_CACHE:-/var/cache/freshet-fresh-debian}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ROOT=$CACHE/root
RUN=$CACHE/run
MERGED=$RUN/merged
PATH_INSIDE=/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mode=test run_cmd="" worktree=0 keep=0 reuse=0 rebuild=0 use_cuda=1 cuda_dir=""
jobs=${FRESHET_JOBS:-}
pathspecs=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --demo) mode=demo ;;
    --run) mode=run; run_cmd=${2:?--run needs a command}; shift ;;
    --shell) mode=shell ;;
    --worktree) worktree=1 ;;
    --keep) keep=1 ;;
    --reuse) reuse=1; keep=1 ;;
    --no-cuda) use_cuda=0 ;;
    --cuda) cuda_dir=${2:?--cuda needs a directory}; shift ;;
    --rebuild) rebuild=1 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    --) shift; pathspecs=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh_debian.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[fresh_debian %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "$*"; exit 1; }
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, mount, chroot)"
command -v git >/dev/null || die "needs git"
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi

if [[ $use_cuda == 1 ]]; then
  if [[ -z $cuda_dir && -e /usr/local/cuda ]]; then cuda_dir=$(readlink -f /usr/local/cuda); fi
  if [[ -z $cuda_dir ]]; then
    say "no CUDA toolkit here (/usr/local/cuda); running without one"; use_cuda=0
  else
    cuda_dir=$(readlink -f "$cuda_dir")
    [[ -x $cuda_dir/bin/nvcc ]] || die "no bin/nvcc in $cuda_dir"
  fi
fi

# Whether anything is still mounted under ROOT_CACHE/run: nothing there is deleted while it is.
mounted_under_run() { awk -v d="$RUN/" 'index($2 "/", d) == 1 {found = 1} END {exit !found}' /proc/self/mounts; }

# --- the bare root, built once -------------------------------------------------------------------
t_all=$(date +%s)
if [[ $rebuild == 1 && -d $ROOT ]]; then
  mounted_under_run && die "$MERGED is mounted (another run?)"
  say "removing the cached root $ROOT"; rm -rf "$ROOT"
fi
if [[ ! -d $ROOT ]]; then
  t=$(date +%s)
  say "building the bare root: debootstrap --variant=minbase $SUITE $ROOT.new $MIRROR"
  rm -rf "$ROOT.new"; mkdir -p "$CACHE"
  debootstrap --variant=minbase "$SUITE" "$ROOT.new" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $CACHE/debootstrap.log"
  # The suites of an installed system: the release, its updates and its security fixes.
  security=${MIRROR%/debian}/debian-security
  cat >"$ROOT.new/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $security $SUITE-security main
EOF
  mv "$ROOT.new" "$ROOT"
  say "bare root built in $(elapsed "$t")"
fi

# --- this run's layer over it --------------------------------------------------------------------
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -d $MERGED ]]; then
    # Processes left inside the root (a server a test started and did not stop): end them by id.
    local pids=() p
    for p in /proc/[0-9]*; do
      [[ $(readlink "$p/root" 2>/dev/null) == "$MERGED"* ]] && pids+=("${p#/proc/}")
    done
    if [[ ${#pids[@]} -gt 0 ]]; then
      say "ending processes left in the root: ${pids[*]}"
      kill -TERM "${pids[@]}" 2>/dev/null || true; sleep 2; kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    umount -R "$MERGED" 2>/dev/null || umount -R -l "$MERGED" 2>/dev/null || true
  fi
  if mounted_under_run; then
    say "something is still mounted under $RUN; left as it is (see: findmnt -R $MERGED)"
  elif [[ $keep == 1 ]]; then
    say "kept: $RUN (scripts/fresh_debian.sh --reuse [--shell] continues in it)"
  else
    rm -rf "$RUN"
  fi
  say "total $(elapsed "$t_all"), exit status $rc"
  exit "$rc"
}

if mounted_under_run; then die "$MERGED is mounted: another run is going on (or a stale one: umount -R $MERGED)"; fi
if [[ $reuse == 1 ]]; then
  [[ -d $RUN/upper ]] || die "nothing to reuse in $RUN (run once with --keep)"
  [[ $worktree == 0 ]] || die "--worktree needs a new clone; it does not go with --reuse"
else
  rm -rf "$RUN"
fi
mkdir -p "$RUN/upper" "$RUN/work" "$MERGED" "$CACHE/apt-archives/partial"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$RUN/upper,workdir=$RUN/work" "$MERGED"
mount -t proc proc "$MERGED/proc"
mount -t sysfs -o ro sysfs "$MERGED/sys"
mount --rbind /dev "$MERGED/dev"
mount --make-rslave "$MERGED/dev"
mount --bind "$CACHE/apt-archives" "$MERGED/var/cache/apt/archives"
cp /etc/resolv.conf "$MERGED/etc/resolv.conf"
if [[ $use_cuda == 1 ]]; then
  mkdir -p "$MERGED$cuda_dir"
  mount --bind "$cuda_dir" "$MERGED$cuda_dir"
  mount -o remount,bind,ro "$MERGED$cuda_dir"
  [[ -e $MERGED/usr/local/cuda ]] || ln -s "$cuda_dir" "$MERGED/usr/local/cuda"
fi
if [[ -d $REPO/../shared/data ]]; then
  mkdir -p "$MERGED/work/shared/data"
  mount --bind "$REPO/../shared/data" "$MERGED/work/shared/data"
  mount -o remount,bind,ro "$MERGED/work/shared/data"
else
  say "no ../shared/data next to the repository: the demo and tests run without MovieLens"
fi

# --- the clone -----------------------------------------------------------------------------------
CLONE=$MERGED/work/main
if [[ $reuse == 0 ]]; then
  head=$(git -C "$REPO" rev-parse HEAD)
  git clone --quiet --no-local "$REPO" "$CLONE"
  git -C "$CLONE" checkout --quiet --detach "$head"
  say "clone of HEAD $(git -C "$REPO" log -1 --format='%h %s' | cut -c1-80)"
  if [[ $worktree == 1 ]]; then
    git -C "$REPO" diff --binary HEAD -- "${pathspecs[@]}" >"$RUN/worktree.patch"
    if [[ -s $RUN/worktree.patch ]]; then git -C "$CLONE" apply --whitespace=nowarn "$RUN/worktree.patch"; fi
    mapfile -t untracked < <(git -C "$REPO" ls-files --others --exclude-standard -- "${pathspecs[@]}")
    if [[ ${#untracked[@]} -gt 0 ]]; then
      (cd "$REPO" && tar -cf - -- "${untracked[@]}") | tar -xf - -C "$CLONE"
    fi
    say "applied the working tree's changes: $(git -C "$CLONE" status --short | wc -l) files" \
        "($(git -C "$CLONE" status --short | awk '{print $2}' | tr '\n' ' '))"
  fi
fi

# --- the command, as a new user runs it ----------------------------------------------------------
envs=(PATH="$PATH_INSIDE" HOME=/root)
[[ -n $jobs ]] && envs+=(FRESHET_JOBS="$jobs")
[[ $mode == shell && -n ${TERM:-} ]] && envs+=(TERM="$TERM")
case $mode in
  test) cmd=./scripts/test.sh ;;
  demo) cmd=./scripts/demo.sh; envs+=(DEMO_SECONDS="${DEMO_SECONDS:-20}") ;;
  run) cmd=$run_cmd ;;
  shell) cmd="exec bash -i" ;;
esac
say "running in the root: env -i ${envs[*]} bash -c 'cd /work/main && $cmd'"
t=$(date +%s)
set +e
chroot "$MERGED" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /work/main && $cmd"
rc=$?
set -e
say "'$cmd' exited with $rc after $(elapsed "$t")"
exit "$rc"
