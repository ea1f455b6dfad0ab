// Exact top-K by inner product: freshet's CPU backend (kernels::CreateBackend("cpu")) against FAISS
// IndexFlatIP, on the same random float32 item matrix and queries, in one run.
//
// Workloads: items uniform in [-1, 1) (seed 42, as topk_bench.cc), dim 64, k 20, no bias or
// exclusions; for every item count, batch size B in {1, 64, 1024} and thread count T in {1, 2}:
//   freshet  Backend::TopK over the batch. T > 1 splits each batch across T std::threads (the
//            backend is thread-safe) that meet at a barrier per batch; when B < T (batch 1 on two
//            threads) each thread answers its own batch, i.e. T concurrent single-query requests.
//   faiss    IndexFlatIP::search over the batch with omp_set_num_threads(T) (FAISS uses BLAS sgemm
//            from 20 queries on, its own loop below that).
// Then both answer the same 256 queries and the overlap of their top-k sets is reported (scores
// are summed in different orders, so near-ties at the k-th place may differ).
//
// Output, JSON lines on stdout:
//   {"engine":"freshet"|"faiss","items":N,"dim":64,"k":20,"batch":B,"threads":T,"qps":Q,
//    "queries":n,"seconds":s,"mode":"split"|"concurrent"|"omp"}
//   {"check":"overlap","items":N,"queries":256,"mean_overlap":x,"min_overlap":y,"identical":z}
//
// Flags: --items N[,N...] (default 100000)  --large (adds 1000000)  --batches 1,64,1024
//        --threads 1,2  --min_seconds S (per measurement, default 1)  --check_queries Q (256)
// Run as REFERENCE.md says for Debian's FAISS (OpenBLAS + OpenMP):
//   OMP_WAIT_POLICY=passive build/benchmarks/kernels/freshet_faiss_compare --large
// (and without OMP_PROC_BIND, or two threads run several times slower than one).
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/random.h"
#include "kernels/backend.h"

namespace freshet::kernels {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kDim = 64;
constexpr int kK = 20;
constexpr int kQueryPool = 2048;  // a multiple of every batch size used

std::vector<float> UniformFloats(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = 2.0f * rng.UniformFloat() - 1.0f;
  return v;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct Measurement {
  double qps = 0;
  int64_t queries = 0;
  double seconds = 0;
};

// One batch of `count` queries starting at pool row `first`.
void FreshetBatch(const Backend& backend, const ItemMatrixView& items, const float* pool,
                  int64_t first, int count, std::vector<TopKQuery>* queries,
                  std::vector<std::vector<ScoredItem>>* results) {
  queries->resize(static_cast<size_t>(count));
  results->resize(static_cast<size_t>(count));
  for (int q = 0; q < count; ++q) {
    (*queries)[q] = TopKQuery{pool + (first + q) * kDim, {}};
  }
  const absl::Status s = backend.TopK(items, *queries, kK, absl::MakeSpan(*results));
  if (!s.ok()) {
    std::fprintf(stderr, "freshet TopK failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

Measurement RunFreshet(const Backend& backend, const ItemMatrixView& items,
                       const std::vector<float>& pool, int batch, int threads, double min_seconds) {
  // Queries per round: the batch split across threads, or one batch per thread when it cannot
  // be split.
  const int per_round = batch >= threads ? batch : batch * threads;
  std::atomic<bool> stop{false};
  std::barrier sync(threads);
  int64_t rounds = 0;
  Clock::time_point start;
  const auto worker = [&](int t, bool is_main) {
    std::vector<TopKQuery> queries;
    std::vector<std::vector<ScoredItem>> results;
    int first_in_round;
    int count;
    if (batch >= threads) {
      first_in_round = static_cast<int>(static_cast<int64_t>(batch) * t / threads);
      count = static_cast<int>(static_cast<int64_t>(batch) * (t + 1) / threads) - first_in_round;
    } else {
      first_in_round = batch * t;
      count = batch;
    }
    for (int64_t round = 0;; ++round) {
      if (is_main) {
        if (round == 1) start = Clock::now();  // round 0 warms up
        if (round > 1 && Seconds(start) >= min_seconds) stop.store(true);
      }
      sync.arrive_and_wait();
      if (stop.load()) return;
      const int64_t offset = (round * per_round) % kQueryPool;
      FreshetBatch(backend, items, pool.data(), offset + first_in_round, count, &queries, &results);
      sync.arrive_and_wait();
      if (is_main && round >= 1) ++rounds;
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads; ++t) helpers.emplace_back(worker, t, false);
  worker(0, true);
  for (std::thread& h : helpers) h.join();
  Measurement m;
  m.seconds = Seconds(start);
  m.queries = rounds * per_round;
  m.qps = static_cast<double>(m.queries) / m.seconds;
  return m;
}

Measurement RunFaiss(const faiss::IndexFlatIP& index, const std::vector<float>& pool, int batch,
                     int threads, double min_seconds) {
  omp_set_num_threads(threads);
  std::vector<float> distances(static_cast<size_t>(batch) * kK);
  std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(batch) * kK);
  index.search(batch, pool.data(), kK, distances.data(), labels.data());  // warm-up
  const Clock::time_point start = Clock::now();
  int64_t rounds = 0;
  do {
    const int64_t offset = (rounds * batch) % kQueryPool;
    index.search(batch, pool.data() + offset * kDim, kK, distances.data(), labels.data());
    ++rounds;
  } while (Seconds(start) < min_seconds);
  Measurement m;
  m.seconds = Seconds(start);
  m.queries = rounds * batch;
  m.qps = static_cast<double>(m.queries) / m.seconds;
  return m;
}

void Print(const char* engine, int64_t items, int batch, int threads, const Measurement& m,
           const char* mode) {
  std::printf(
      "{\"engine\":\"%s\",\"items\":%lld,\"dim\":%d,\"k\":%d,\"batch\":%d,\"threads\":%d,"
      "\"qps\":%.1f,\"queries\":%lld,\"seconds\":%.3f,\"mode\":\"%s\"}\n",
      engine, static_cast<long long>(items), kDim, kK, batch, threads, m.qps,
      static_cast<long long>(m.queries), m.seconds, mode);
  std::fflush(stdout);
}

void CheckOverlap(const Backend& backend, const ItemMatrixView& items,
                  const faiss::IndexFlatIP& index, const std::vector<float>& pool, int count) {
  std::vector<TopKQuery> queries;
  std::vector<std::vector<ScoredItem>> ours;
  FreshetBatch(backend, items, pool.data(), 0, count, &queries, &ours);
  omp_set_num_threads(1);
  std::vector<float> distances(static_cast<size_t>(count) * kK);
  std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(count) * kK);
  index.search(count, pool.data(), kK, distances.data(), labels.data());
  double sum = 0;
  double min_overlap = 1;
  int identical = 0;
  for (int q = 0; q < count; ++q) {
    std::vector<int64_t> a;
    for (const ScoredItem& s : ours[q]) a.push_back(s.item);
    std::vector<int64_t> b(labels.begin() + static_cast<int64_t>(q) * kK,
                           labels.begin() + static_cast<int64_t>(q + 1) * kK);
    const bool same_order = a == b;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<int64_t> common;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(common));
    const double overlap = static_cast<double>(common.size()) / kK;
    sum += overlap;
    min_overlap = std::min(min_overlap, overlap);
    identical += same_order ? 1 : 0;
  }
  std::printf(
      "{\"check\":\"overlap\",\"items\":%lld,\"queries\":%d,\"mean_overlap\":%.5f,"
      "\"min_overlap\":%.3f,\"identical\":%d}\n",
      static_cast<long long>(items.rows), count, sum / count, min_overlap, identical);
  std::fflush(stdout);
}

bool ParseList(absl::string_view text, std::vector<int64_t>* out) {
  out->clear();
  for (absl::string_view piece : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(piece, &v) || v < 1) return false;
    out->push_back(v);
  }
  return !out->empty();
}

int Main(int argc, char** argv) {
  std::vector<int64_t> item_counts = {100000};
  std::vector<int64_t> batches = {1, 64, 1024};
  std::vector<int64_t> thread_counts = {1, 2};
  double min_seconds = 1.0;
  int check_queries = 256;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    bool ok = true;
    if (arg == "--large") {
      item_counts.push_back(1000000);
    } else if (arg == "--items" && has_value) {
      ok = ParseList(argv[++i], &item_counts);
    } else if (arg == "--batches" && has_value) {
      ok = ParseList(argv[++i], &batches) &&
           std::all_of(batches.begin(), batches.end(),
                       [](int64_t b) { return b <= 1024 && kQueryPool % b == 0; });
    } else if (arg == "--threads" && has_value) {
      ok = ParseList(argv[++i], &thread_counts);
    } else if (arg == "--min_seconds" && has_value) {
      ok = absl::SimpleAtod(argv[++i], &min_seconds) && min_seconds >= 0;
    } else if (arg == "--check_queries" && has_value) {
      ok = absl::SimpleAtoi(argv[++i], &check_queries) && check_queries >= 1 &&
           check_queries <= kQueryPool;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: freshet_faiss_compare [--items N,...] [--large] [--batches 1,64,1024] "
                   "[--threads 1,2] [--min_seconds S] [--check_queries Q]\n"
                   "batches must divide %d and be at most 1024\n",
                   kQueryPool);
      return 2;
    }
  }
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  if (std::getenv("OMP_PROC_BIND") != nullptr) {
    std::fprintf(stderr, "warning: OMP_PROC_BIND is set; FAISS with 2 threads will be slow\n");
  }
  std::printf(
      "{\"meta\":{\"omp_wait_policy\":\"%s\",\"omp_max_threads\":%d,\"hardware_threads\":%u}}\n",
      wait_policy ? wait_policy : "", omp_get_max_threads(), std::thread::hardware_concurrency());

  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cpu");
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  const std::vector<float> pool = UniformFloats(static_cast<int64_t>(kQueryPool) * kDim, 7);
  for (const int64_t n : item_counts) {
    const std::vector<float> matrix = UniformFloats(n * kDim, 42);
    const ItemMatrixView items{matrix.data(), nullptr, n, kDim, kDim};
    faiss::IndexFlatIP index(kDim);
    index.add(n, matrix.data());
    for (const int64_t batch : batches) {
      for (const int64_t threads : thread_counts) {
        const int b = static_cast<int>(batch);
        const int t = static_cast<int>(threads);
        Print("freshet", n, b, t, RunFreshet(**backend, items, pool, b, t, min_seconds),
              t == 1 ? "split" : (b >= t ? "split" : "concurrent"));
        Print("faiss", n, b, t, RunFaiss(index, pool, b, t, min_seconds), "omp");
      }
    }
    CheckOverlap(**backend, items, index, pool, check_queries);
  }
  return 0;
}

}  // namespace
}  // namespace freshet::kernels

int main(int argc, char** argv) { return freshet::kernels::Main(argc, argv); }
