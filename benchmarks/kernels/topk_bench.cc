// Exact top-K throughput of the CPU kernels (kernels/topk.h), one thread.
//
// Workloads (random uniform [-1, 1) float32 items and queries, seeded; dim 64, k 20, no bias or
// exclusions unless named):
//   BM_TopK/items:N/batch:B          TopKInnerProductBatch with the fastest compiled kernel, a
//                                    batch of B queries per call; N in {10k, 100k, 1M}, B in
//                                    {1, 64, 1024}. Counter qps = queries per second.
//   BM_TopKPortable/items:N/batch:B  the same through the portable (non-AVX-512) kernel, for
//                                    scale; 100k items only.
//   BM_TopKBiasExclude/items:N/batch:B  with a per-item bias and 1,000 excluded rows per query.
//   BM_PackedTopK/items:N/batch:B/two_stage:S  PackedItemMatrix::TopK (kernels/packed_items.h) on a
//                                    copy packed beforehand, batches of B in {1, 6, 12, 32}, N in
//                                    {10k, 100k}; S=0 the exact kernels only, S=1 the int8 stage
//                                    and exact re-scoring where the processor runs it. Counter
//                                    us_per_query; two_stage_share = queries the int8 stage
//                                    answered / queries.
//   BM_SelectTopK/items:N            SelectTopK over N precomputed scores (TopKFromScores).
//   BM_MemoryPass/items:N            a plain summing pass over the N x 64 matrix: the memory floor
//                                    one batch-1 query cannot beat (bytes_per_second, time/pass).
//
// Run (Release build):
//   build/benchmarks/kernels/freshet_kernels_bench --benchmark_min_time=0.5
//   build/benchmarks/kernels/freshet_kernels_bench --benchmark_format=json
//       --benchmark_out=topk.json --benchmark_filter='BM_TopK/'   (one command line)
// CTest runs a tiny subset once (label bench-smoke) so the benchmark keeps compiling and working.
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "common/random.h"
#include "kernels/backend.h"
#include "kernels/internal/inner_product_top_k.h"
#include "kernels/packed_items.h"
#include "kernels/topk.h"

namespace freshet::kernels {
namespace {

constexpr int kDim = 64;
constexpr int kK = 20;

std::vector<float> UniformFloats(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = 2.0f * rng.UniformFloat() - 1.0f;
  return v;
}

// Item matrices are shared between benchmarks of the same size: generating 1M x 64 floats takes
// longer than many of the measurements.
const std::vector<float>& Items(int64_t rows) {
  static auto* cache = new std::map<int64_t, std::vector<float>>();
  auto it = cache->find(rows);
  if (it == cache->end()) it = cache->emplace(rows, UniformFloats(rows * kDim, 42)).first;
  return it->second;
}

ItemMatrixView View(int64_t rows) {
  return ItemMatrixView{Items(rows).data(), nullptr, rows, kDim, kDim};
}

void RunTopK(benchmark::State& state, internal::SimdLevel level, const ItemMatrixView& items,
             const std::vector<std::vector<int32_t>>& excludes) {
  const int64_t batch = state.range(1);
  const std::vector<float> query_vectors = UniformFloats(batch * kDim, 7);
  std::vector<TopKQuery> queries(static_cast<size_t>(batch));
  for (int64_t q = 0; q < batch; ++q) {
    queries[q].vector = query_vectors.data() + q * kDim;
    if (!excludes.empty()) queries[q].exclude = excludes[q % excludes.size()];
  }
  std::vector<std::vector<ScoredItem>> results(static_cast<size_t>(batch));
  for (auto _ : state) {
    internal::InnerProductTopK(level, items, queries, kK, absl::MakeSpan(results));
    benchmark::DoNotOptimize(results.data());
    benchmark::ClobberMemory();
  }
  state.counters["qps"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                             benchmark::Counter::kIsRate);
}

void BM_TopK(benchmark::State& state) {
  RunTopK(state, internal::BestSimdLevel(), View(state.range(0)), {});
  state.SetLabel(internal::SimdLevelName(internal::BestSimdLevel()));
}
BENCHMARK(BM_TopK)
    ->ArgNames({"items", "batch"})
    ->ArgsProduct({{10'000, 100'000, 1'000'000}, {1, 64, 1024}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_TopKPortable(benchmark::State& state) {
  RunTopK(state, internal::SimdLevel::kPortable, View(state.range(0)), {});
}
BENCHMARK(BM_TopKPortable)
    ->ArgNames({"items", "batch"})
    ->ArgsProduct({{100'000}, {1, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_TopKBiasExclude(benchmark::State& state) {
  const int64_t rows = state.range(0);
  static const auto* bias = new std::vector<float>(UniformFloats(1'000'000, 11));
  ItemMatrixView items = View(rows);
  items.bias = bias->data();
  // Sorted, spread over the catalog, different per query.
  constexpr int kExcluded = 1000;
  std::vector<std::vector<int32_t>> excludes(8);
  for (size_t e = 0; e < excludes.size(); ++e) {
    for (int i = 0; i < kExcluded; ++i) {
      excludes[e].push_back(static_cast<int32_t>((i * rows + static_cast<int64_t>(e)) / kExcluded));
    }
  }
  RunTopK(state, internal::BestSimdLevel(), items, excludes);
}
BENCHMARK(BM_TopKBiasExclude)
    ->ArgNames({"items", "batch"})
    ->ArgsProduct({{100'000}, {1, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_PackedTopK(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const int64_t batch = state.range(1);
  PackedItemMatrix packed({.two_stage = state.range(2) != 0});
  if (!packed.Update(View(rows), {}).ok()) {
    state.SkipWithError("Update failed");
    return;
  }
  const std::vector<float> query_vectors = UniformFloats(batch * kDim, 7);
  std::vector<TopKQuery> queries(static_cast<size_t>(batch));
  for (int64_t q = 0; q < batch; ++q) queries[q].vector = query_vectors.data() + q * kDim;
  std::vector<std::vector<ScoredItem>> results(static_cast<size_t>(batch));
  for (auto _ : state) {
    if (!packed.TopK(queries, kK, absl::MakeSpan(results)).ok()) {
      state.SkipWithError("TopK failed");
      return;
    }
    benchmark::DoNotOptimize(results.data());
    benchmark::ClobberMemory();
  }
  const double answered = static_cast<double>(state.iterations() * batch);
  state.counters["us_per_query"] = benchmark::Counter(
      answered * 1e-6, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["two_stage_share"] =
      static_cast<double>(packed.two_stage_queries()) / std::max(1.0, answered);
  state.SetLabel(packed.two_stage() ? "int8+exact" : "exact");
}
BENCHMARK(BM_PackedTopK)
    ->ArgNames({"items", "batch", "two_stage"})
    ->ArgsProduct({{10'000, 100'000}, {1, 6, 12, 32}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_SelectTopK(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> scores = UniformFloats(n, 3);
  std::vector<ScoredItem> result;
  for (auto _ : state) {
    SelectTopK(scores.data(), n, {}, kK, &result);
    benchmark::DoNotOptimize(result.data());
  }
  state.counters["qps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(state.iterations() * n * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_SelectTopK)
    ->ArgName("items")
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_MemoryPass(benchmark::State& state) {
  const std::vector<float>& items = Items(state.range(0));
  constexpr int kLanes = 64;
  for (auto _ : state) {
    // Independent per-lane sums vectorise without reassociation, and 64 of them make several
    // independent vector add chains, so this runs at load speed.
    float lanes[kLanes] = {};
    for (size_t i = 0; i + kLanes <= items.size(); i += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += items[i + l];
    }
    benchmark::DoNotOptimize(lanes);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(items.size() * sizeof(float)));
}
BENCHMARK(BM_MemoryPass)
    ->ArgName("items")
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace freshet::kernels

BENCHMARK_MAIN();
