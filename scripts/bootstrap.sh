#!/usr/bin/env bash
# Installs the Debian 12 packages freshet needs to build and test, when they are missing.
# Idempotent: installs nothing when everything is present. As root it runs apt-get; otherwise it
# prints the apt-get line to run. The CUDA toolkit is optional and never installed from here.
set -euo pipefail

PACKAGES=(
  g++ make cmake ninja-build pkg-config
  libabsl-dev          # Status, containers, strings, time
  libeigen3-dev        # dense linear algebra (iALS solves, blocked scoring)
  libtomlplusplus-dev  # the TOML configuration file
  libsimdjson-dev      # JSON-lines events
  libcli11-dev         # command-line parsing of the freshet binary
  zlib1g-dev           # gzip input and output
  librdkafka-dev       # Kafka consumer/producer and the development broker (librdkafka's mock cluster)
  kcat                 # Kafka command-line client: inspecting topics; used by the Kafka tests
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev       # the durable state (store/)
  libhiredis-dev       # Redis client: serving replicas (users' states), the NCCL rendezvous
  haproxy              # the load balancer in front of serving replicas (deploy/haproxy/; tests)
  redis-server         # the tests start a real one on a free loopback port
  curl python3         # the live demo (scripts/demo.sh) reads the API with them
  wrk                  # HTTP load generator for the serving benchmarks
  libjemalloc2         # the freshet binary's allocator (faster than glibc's under the server's load)
  clang                # the libFuzzer targets (scripts/fuzz.sh) and the thread-safety analysis
                       # (scripts/thread_safety.sh): Debian 12's clang 14
  clang-format         # the formatting check (scripts/check_format.sh)
  libclang-rt-14-dev   # clang's libFuzzer and sanitizer runtimes (only a Recommends of clang)
  llvm-14              # llvm-symbolizer: readable stack traces in the fuzzers' crash reports
  chromium chromium-driver python3-selenium
                       # the dashboard's browser test (tests/browser/): headless Chromium driven
                       # through Selenium
)
# Optional, only for benchmarks/kernels/faiss_compare.cc: FRESHET_BENCH_EXTRAS=1 adds FAISS and
# an optimised BLAS for it (Debian's default libblas3 is the slow reference implementation).
if [[ "${FRESHET_BENCH_EXTRAS:-0}" == "1" ]]; then
  PACKAGES+=(libfaiss-dev libopenblas0-openmp)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "freshet needs these Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
