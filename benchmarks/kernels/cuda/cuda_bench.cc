// freshet_kernels_cuda_bench: throughput of the CUDA kernels, one JSON line per workload.
//
// Workloads (defaults in brackets; --flag value to change):
//   bpr    micro-batches of --batch [1024] events, --negatives [4] negatives and a context of
//          --window [3] recent items each (the learner's defaults), on
//          --users [1000000] x --items [100000] tables of --dim [64]; events/s over --batches
//          [50] batches (after one warm-up batch).
//   ials   batched user fold-in of --batch distinct users with --history [32] items each against
//          the item Gramian; events/s (one fold-in per event), and the Gramian's time.
//   topk   exact top-k (--k [20]) over device-resident item matrices of --topk-items
//          [100000,1000000] rows x dim with bias, for query batches of 1, 64 and 1024; queries/s.
//
// Without a CUDA device it prints why on stderr and exits 77 (CTest reports the smoke run as
// skipped). Usage: benchmarks/kernels/cuda/run_gpu.sh, or the binary with the flags above.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/random.h"
#include "kernels/backend.h"
#include "kernels/cuda/bpr_batch.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/ials_fold_in.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::kernels {
namespace {

struct Options {
  int64_t users = 1000000;
  int64_t items = 100000;
  int dim = 64;
  int batch = 1024;
  int negatives = 4;
  int window = 3;
  int history = 32;
  int batches = 50;
  int k = 20;
  std::vector<int64_t> topk_items = {100000, 1000000};
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<float> RandomValues(int64_t n, float scale, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = scale * (2.0f * rng.UniformFloat() - 1.0f);
  return v;
}

absl::StatusOr<std::unique_ptr<DeviceTable>> RandomTable(const CudaContext& ctx, int64_t rows,
                                                         int dim, float scale, uint64_t seed) {
  absl::StatusOr<std::unique_ptr<DeviceTable>> table = DeviceTable::Create(&ctx, dim);
  if (!table.ok()) return table.status();
  absl::Status status = (*table)->Resize(rows);
  if (status.ok() && scale != 0.0f) {
    status = (*table)->Upload(0, RandomValues(rows * dim, scale, seed));
  }
  if (!status.ok()) return status;
  return table;
}

#define BENCH_ASSIGN(lhs, expr)                 \
  auto lhs##_or = (expr);                       \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = std::move(*lhs##_or)

#define BENCH_CHECK(expr)     \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) return s_;  \
  } while (0)

absl::Status BenchBpr(const CudaContext& ctx, const Options& o) {
  BENCH_ASSIGN(users, RandomTable(ctx, o.users, o.dim, 0.1f, 1));
  BENCH_ASSIGN(user_acc, RandomTable(ctx, o.users, 1, 0.0f, 0));
  BENCH_ASSIGN(items, RandomTable(ctx, o.items, o.dim, 0.1f, 2));
  BENCH_ASSIGN(item_acc, RandomTable(ctx, o.items, 1, 0.0f, 0));
  BENCH_ASSIGN(bias, RandomTable(ctx, o.items, 1, 0.0f, 0));
  BENCH_ASSIGN(bias_acc, RandomTable(ctx, o.items, 1, 0.0f, 0));
  const BprDeviceModel model{users.get(),    user_acc.get(), items.get(),
                             item_acc.get(), bias.get(),     bias_acc.get()};
  // Pre-drawn batches so that the host's random numbers are not timed.
  Rng rng(3);
  const int m = 1 + o.negatives;
  const int total = o.batches + 1;
  std::vector<int32_t> u(static_cast<size_t>(total) * o.batch);
  std::vector<int32_t> pos(u.size()), neg(u.size() * o.negatives), ctx_rows(u.size() * o.window);
  std::vector<float> ctx_weights(ctx_rows.size(), 0.4f / static_cast<float>(std::max(1, o.window)));
  for (int32_t& x : ctx_rows) x = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(o.items)));
  std::vector<float> log_q(u.size() * m, 0.0f), weights(u.size(), 1.0f);
  for (int32_t& x : u) x = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(o.users)));
  for (int32_t& x : pos) x = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(o.items)));
  for (int32_t& x : neg) x = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(o.items)));
  for (float& x : log_q) x = -std::log(static_cast<float>(o.items)) + rng.UniformFloat();
  const auto batch_at = [&](int b) {
    const size_t e0 = static_cast<size_t>(b) * o.batch;
    return BprBatch{absl::MakeConstSpan(u).subspan(e0, o.batch),
                    absl::MakeConstSpan(pos).subspan(e0, o.batch),
                    absl::MakeConstSpan(neg).subspan(e0 * o.negatives,
                                                     static_cast<size_t>(o.batch) * o.negatives),
                    absl::MakeConstSpan(log_q).subspan(e0 * m, static_cast<size_t>(o.batch) * m),
                    absl::MakeConstSpan(weights).subspan(e0, o.batch),
                    o.negatives,
                    absl::MakeConstSpan(ctx_rows).subspan(e0 * o.window,
                                                          static_cast<size_t>(o.batch) * o.window),
                    absl::MakeConstSpan(ctx_weights)
                        .subspan(e0 * o.window, static_cast<size_t>(o.batch) * o.window),
                    o.window};
  };
  const BprParams params{0.05f, 1e-4f, 1e-6f, 0.3f};  // bpr.long_term_weight's default
  BENCH_CHECK(RunBprBatch(ctx, model, batch_at(0), params));
  BENCH_CHECK(ctx.Synchronize());
  const auto start = std::chrono::steady_clock::now();
  for (int b = 1; b < total; ++b) BENCH_CHECK(RunBprBatch(ctx, model, batch_at(b), params));
  BENCH_CHECK(ctx.Synchronize());
  const double seconds = Seconds(start);
  const double events = static_cast<double>(o.batches) * o.batch;
  std::printf(
      "{\"bench\":\"bpr_batch\",\"device\":\"%s\",\"users\":%lld,\"items\":%lld,\"dim\":%d,"
      "\"batch\":%d,\"negatives\":%d,\"window\":%d,\"batches\":%d,\"seconds\":%.6f,\"events_per_"
      "sec\":%.1f}\n",
      ctx.description().c_str(), static_cast<long long>(o.users), static_cast<long long>(o.items),
      o.dim, o.batch, o.negatives, o.window, o.batches, seconds, events / seconds);
  return absl::OkStatus();
}

absl::Status BenchIals(const CudaContext& ctx, const Options& o) {
  if (o.dim > kMaxIalsDim) return absl::OkStatus();
  BENCH_ASSIGN(users, RandomTable(ctx, o.users, o.dim, 0.1f, 4));
  BENCH_ASSIGN(items, RandomTable(ctx, o.items, o.dim, 0.1f, 5));
  DeviceBuffer<float> gram;
  BENCH_CHECK(ComputeGramian(ctx, *items, &gram));
  BENCH_CHECK(ctx.Synchronize());
  const auto gram_start = std::chrono::steady_clock::now();
  BENCH_CHECK(ComputeGramian(ctx, *items, &gram));
  BENCH_CHECK(ctx.Synchronize());
  const double gram_seconds = Seconds(gram_start);

  const int batch = static_cast<int>(std::min<int64_t>(o.batch, o.users));
  Rng rng(6);
  const int total = o.batches + 1;
  std::vector<int32_t> rows(static_cast<size_t>(total) * batch);
  for (int b = 0; b < total; ++b) {
    // Distinct users within a batch: consecutive rows from a random start.
    const int64_t first = rng.Below(static_cast<uint32_t>(o.users - batch + 1));
    for (int i = 0; i < batch; ++i)
      rows[static_cast<size_t>(b) * batch + i] = static_cast<int32_t>(first + i);
  }
  std::vector<int64_t> offsets(static_cast<size_t>(batch) + 1);
  for (int i = 0; i <= batch; ++i) offsets[i] = static_cast<int64_t>(i) * o.history;
  std::vector<int32_t> observed(static_cast<size_t>(batch) * o.history);
  for (int i = 0; i < batch; ++i) {
    for (int j = 0; j < o.history; ++j) {  // distinct items per user: a strided walk
      observed[static_cast<size_t>(i) * o.history + j] = static_cast<int32_t>(
          (static_cast<int64_t>(i) * 7919 + static_cast<int64_t>(j) * 104729) % o.items);
    }
  }
  std::vector<float> confidences(observed.size());
  for (size_t j = 0; j < confidences.size(); ++j)
    confidences[j] = 1.0f + 0.5f * static_cast<float>(j % 8);
  const IalsParams params{0.1f, 0.5f, 0.1f};
  const auto batch_at = [&](int b) {
    return IalsBatch{absl::MakeConstSpan(rows).subspan(static_cast<size_t>(b) * batch, batch),
                     offsets, observed, confidences};
  };
  BENCH_ASSIGN(warm, RunIalsFoldIn(ctx, users.get(), *items, gram, batch_at(0), params));
  const auto start = std::chrono::steady_clock::now();
  int64_t failed = warm;
  for (int b = 1; b < total; ++b) {
    BENCH_ASSIGN(f, RunIalsFoldIn(ctx, users.get(), *items, gram, batch_at(b), params));
    failed += f;
  }
  const double seconds = Seconds(start);
  const double events = static_cast<double>(o.batches) * batch;
  std::printf(
      "{\"bench\":\"ials_fold_in\",\"device\":\"%s\",\"users\":%lld,\"items\":%lld,\"dim\":%d,"
      "\"batch\":%d,\"history\":%d,\"batches\":%d,\"seconds\":%.6f,\"events_per_sec\":%.1f,"
      "\"gramian_seconds\":%.6f,\"failed\":%lld}\n",
      ctx.description().c_str(), static_cast<long long>(o.users), static_cast<long long>(o.items),
      o.dim, batch, o.history, o.batches, seconds, events / seconds, gram_seconds,
      static_cast<long long>(failed));
  return absl::OkStatus();
}

absl::Status BenchTopK(const CudaBackend& backend, const Options& o) {
  for (const int64_t rows : o.topk_items) {
    std::unique_ptr<DeviceTable> vectors, bias;
    BENCH_CHECK(backend.WithContext([&](const CudaContext& ctx) -> absl::Status {
      BENCH_ASSIGN(v, RandomTable(ctx, rows, o.dim, 1.0f, 7));
      BENCH_ASSIGN(b, RandomTable(ctx, rows, 1, 0.5f, 8));
      vectors = std::move(v);
      bias = std::move(b);
      return absl::OkStatus();
    }));
    const DeviceItemMatrix matrix{vectors->data(), bias->data(), rows, o.dim, o.dim};
    for (const int batch : {1, 64, 1024}) {
      std::vector<std::vector<float>> vecs;
      std::vector<TopKQuery> queries;
      for (int q = 0; q < batch; ++q) vecs.push_back(RandomValues(o.dim, 1.0f, 100 + q));
      for (int q = 0; q < batch; ++q) queries.push_back({vecs[q].data(), {}});
      std::vector<std::vector<ScoredItem>> results(static_cast<size_t>(batch));
      BENCH_CHECK(backend.TopKDevice(matrix, queries, o.k, absl::MakeSpan(results)));
      // Repeat until at least ~0.5 s or 200 calls.
      int calls = 0;
      const auto start = std::chrono::steady_clock::now();
      while (calls < 200 && (calls < 3 || Seconds(start) < 0.5)) {
        BENCH_CHECK(backend.TopKDevice(matrix, queries, o.k, absl::MakeSpan(results)));
        ++calls;
      }
      const double seconds = Seconds(start);
      std::printf(
          "{\"bench\":\"topk\",\"device\":\"%s\",\"items\":%lld,\"dim\":%d,\"batch\":%d,\"k\":%d,"
          "\"calls\":%d,\"seconds\":%.6f,\"ms_per_call\":%.4f,\"queries_per_sec\":%.1f}\n",
          backend.Description().c_str(), static_cast<long long>(rows), o.dim, batch, o.k, calls,
          seconds, 1e3 * seconds / calls, static_cast<double>(calls) * batch / seconds);
    }
    BENCH_CHECK(backend.WithContext([&](const CudaContext&) {
      vectors.reset();
      bias.reset();
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    int64_t n = 0;
    if (flag == "--topk-items") {
      o->topk_items.clear();
      for (const absl::string_view part : absl::StrSplit(value, ',')) {
        if (!absl::SimpleAtoi(part, &n) || n < 1) return false;
        o->topk_items.push_back(n);
      }
      continue;
    }
    if (!absl::SimpleAtoi(value, &n) || n < 1 || n > (int64_t{1} << 31) - 1) return false;
    if (flag == "--users")
      o->users = n;
    else if (flag == "--items")
      o->items = n;
    else if (flag == "--dim")
      o->dim = static_cast<int>(n);
    else if (flag == "--batch")
      o->batch = static_cast<int>(n);
    else if (flag == "--negatives")
      o->negatives = static_cast<int>(n);
    else if (flag == "--window")
      o->window = static_cast<int>(n);
    else if (flag == "--history")
      o->history = static_cast<int>(n);
    else if (flag == "--batches")
      o->batches = static_cast<int>(n);
    else if (flag == "--k")
      o->k = static_cast<int>(n);
    else
      return false;
  }
  return o->history <= o->items && o->negatives < kMaxBprCandidates && o->window <= kMaxBprWindow;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::fprintf(stderr,
                 "usage: %s [--users N] [--items N] [--dim N] [--batch N] [--negatives N] "
                 "[--window N] [--history N] [--batches N] [--k N] [--topk-items N,N,...]\n",
                 argv[0]);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<CudaContext>> ctx = CudaContext::Create(0);
  if (!ctx.ok()) {
    std::fprintf(stderr, "freshet_kernels_cuda_bench: skipped, no CUDA device: %s\n",
                 std::string(ctx.status().message()).c_str());
    return 77;
  }
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (!backend.ok()) {
    std::fprintf(stderr, "freshet_kernels_cuda_bench: %s\n",
                 std::string(backend.status().message()).c_str());
    return 1;
  }
  absl::Status status = BenchBpr(**ctx, options);
  if (status.ok()) status = BenchIals(**ctx, options);
  if (status.ok()) status = BenchTopK(**backend, options);
  if (!status.ok()) {
    std::fprintf(stderr, "freshet_kernels_cuda_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace freshet::kernels

int main(int argc, char** argv) { return freshet::kernels::Main(argc, argv); }
