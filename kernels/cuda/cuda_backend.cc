#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/launch.h"
#include "kernels/internal/top_k_args.h"
#include "kernels/topk.h"

namespace freshet::kernels {
namespace {

using cuda_internal::kMaxDeviceK;
using cuda_internal::kSelectTile;

// Scores held on the device at once (floats): bounds the queries per GEMM to this / rows.
constexpr int64_t kScoreBudget = int64_t{1} << 26;
// Queries per GEMM at most (the selection grid's y dimension must stay <= 65535).
constexpr int64_t kMaxQueriesPerBlock = 1024;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Masks the exclude lists of queries [first, first + count) in `scores` (count x rows).
absl::Status MaskExcluded(const CudaContext& ctx, absl::Span<const TopKQuery> queries,
                          int64_t first, int64_t count, int64_t rows, float* scores) {
  std::vector<int64_t> offsets(static_cast<size_t>(count + 1), 0);
  std::vector<int32_t> ids;
  for (int64_t q = 0; q < count; ++q) {
    const absl::Span<const int32_t> exclude = queries[first + q].exclude;
    ids.insert(ids.end(), exclude.begin(), exclude.end());
    offsets[q + 1] = static_cast<int64_t>(ids.size());
  }
  if (ids.empty()) return absl::OkStatus();
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int64_t> offsets_device, ctx.Allocate<int64_t>(count + 1));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ids_device,
                           ctx.Allocate<int32_t>(static_cast<int64_t>(ids.size())));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToDevice(offsets_device.data(), offsets.data(), count + 1));
  FRESHET_RETURN_IF_ERROR(
      ctx.CopyToDevice(ids_device.data(), ids.data(), static_cast<int64_t>(ids.size())));
  return CudaStatus(
      cuda_internal::LaunchMaskExcluded(scores, rows, static_cast<int>(count),
                                        offsets_device.data(), ids_device.data(), ctx.stream()),
      "exclude mask kernel");
}

// Selects the k best of each of `count` score rows of length n (NaN = not eligible) on the
// device and appends them, best first, to results[0 .. count). Requires 1 <= k <= min(n,
// kMaxDeviceK).
absl::Status SelectOnDevice(const CudaContext& ctx, const float* scores, int64_t n, int64_t count,
                            int k, absl::Span<std::vector<ScoredItem>> results) {
  const int64_t first_out = CeilDiv(n, kSelectTile) * k;
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> score_a, ctx.Allocate<float>(count * first_out));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> item_a, ctx.Allocate<int32_t>(count * first_out));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> score_b, ctx.Allocate<float>(count * first_out));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> item_b, ctx.Allocate<int32_t>(count * first_out));
  const float* in_scores = scores;
  const int32_t* in_items = nullptr;  // first round: the item is the position
  float* out_scores = score_a.data();
  int32_t* out_items = item_a.data();
  int64_t remaining = n;
  // Each round keeps k per tile of kSelectTile: with k <= kSelectTile / 2 the candidates at least
  // halve (minus one tile) per round, and the round that sees a single tile leaves the answer.
  while (true) {
    const int64_t tiles = CeilDiv(remaining, kSelectTile);
    FRESHET_CUDA_RETURN_IF_ERROR(
        cuda_internal::LaunchTileTopK(in_scores, in_items, remaining, static_cast<int>(count), k,
                                      out_scores, out_items, ctx.stream()),
        "top-k selection kernel");
    if (tiles == 1) break;
    remaining = tiles * k;
    in_scores = out_scores;
    in_items = out_items;
    const bool wrote_a = out_scores == score_a.data();
    out_scores = wrote_a ? score_b.data() : score_a.data();
    out_items = wrote_a ? item_b.data() : item_a.data();
  }
  std::vector<float> host_scores(static_cast<size_t>(count * k));
  std::vector<int32_t> host_items(static_cast<size_t>(count * k));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToHost(host_scores.data(), out_scores, count * k));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToHost(host_items.data(), out_items, count * k));
  FRESHET_RETURN_IF_ERROR(ctx.Synchronize());
  for (int64_t q = 0; q < count; ++q) {
    for (int64_t j = 0; j < k; ++j) {
      const float s = host_scores[q * k + j];
      if (std::isnan(s)) break;  // NaN sorts last: the rest are not eligible
      results[q].push_back(ScoredItem{host_items[q * k + j], s});
    }
  }
  return absl::OkStatus();
}

// Top-K for validated arguments with device-resident items.
absl::Status TopKOnDevice(const CudaContext& ctx, const DeviceItemMatrix& items,
                          absl::Span<const TopKQuery> queries, int k,
                          absl::Span<std::vector<ScoredItem>> results) {
  for (std::vector<ScoredItem>& r : results) r.clear();
  const int64_t nq = static_cast<int64_t>(queries.size());
  const int64_t rows = items.rows;
  if (nq == 0 || rows == 0) return absl::OkStatus();
  const int dim = items.dim;
  const int k_eff = static_cast<int>(std::min<int64_t>(k, rows));

  std::vector<float> packed(static_cast<size_t>(nq * dim));
  for (int64_t q = 0; q < nq; ++q) {
    std::copy_n(queries[q].vector, dim, packed.begin() + q * dim);
  }
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> query_device, ctx.Allocate<float>(nq * dim));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToDevice(query_device.data(), packed.data(), nq * dim));
  const int64_t block =
      std::clamp<int64_t>(kScoreBudget / rows, 1, std::min(nq, kMaxQueriesPerBlock));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> scores, ctx.Allocate<float>(block * rows));
  std::vector<float> host_scores;
  for (int64_t first = 0; first < nq; first += block) {
    const int64_t count = std::min(block, nq - first);
    // scores (column-major rows x count, i.e. query-major rows of `rows` floats) =
    // items (column-major dim x rows, ld = stride)^T * queries (column-major dim x count).
    FRESHET_RETURN_IF_ERROR(ctx.Sgemm(
        CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(count), dim, 1.0f,
        items.vectors, static_cast<int>(items.stride), query_device.data() + first * dim, dim, 0.0f,
        scores.data(), static_cast<int>(rows), "scores"));
    if (items.bias != nullptr) {
      FRESHET_CUDA_RETURN_IF_ERROR(
          cuda_internal::LaunchAddBias(scores.data(), rows, count, items.bias, ctx.stream()),
          "bias kernel");
    }
    FRESHET_RETURN_IF_ERROR(MaskExcluded(ctx, queries, first, count, rows, scores.data()));
    if (k_eff <= kMaxDeviceK) {
      FRESHET_RETURN_IF_ERROR(
          SelectOnDevice(ctx, scores.data(), rows, count, k_eff, results.subspan(first, count)));
      continue;
    }
    // Very large k: the selection rounds would not shrink the candidates; select on the host.
    host_scores.resize(static_cast<size_t>(count * rows));
    FRESHET_RETURN_IF_ERROR(ctx.CopyToHost(host_scores.data(), scores.data(), count * rows));
    FRESHET_RETURN_IF_ERROR(ctx.Synchronize());
    for (int64_t q = 0; q < count; ++q) {
      SelectTopK(host_scores.data() + q * rows, rows, queries[first + q].exclude, k,
                 &results[first + q]);
    }
  }
  return absl::OkStatus();
}

}  // namespace

CudaBackend::CudaBackend(std::unique_ptr<CudaContext> context) : context_(std::move(context)) {}

CudaBackend::~CudaBackend() = default;

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(int device) {
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<CudaContext> context, CudaContext::Create(device));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(context)));
}

std::string CudaBackend::Description() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat("cuda: ", context_->description());
}

absl::Status CudaBackend::WithContext(
    absl::FunctionRef<absl::Status(const CudaContext&)> fn) const {
  absl::MutexLock lock(&mu_);
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  return fn(*context_);
}

absl::Status CudaBackend::TopK(const ItemMatrixView& items, absl::Span<const TopKQuery> queries,
                               int k, absl::Span<std::vector<ScoredItem>> results) const {
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(items, queries, k, results.size()));
  absl::MutexLock lock(&mu_);
  const CudaContext& ctx = *context_;
  FRESHET_RETURN_IF_ERROR(ctx.Activate());
  if (queries.empty() || items.rows == 0) {
    for (std::vector<ScoredItem>& r : results) r.clear();
    return absl::OkStatus();
  }
  // The last row needs only dim floats, not stride.
  const int64_t floats = (items.rows - 1) * items.stride + items.dim;
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> vectors, ctx.Allocate<float>(floats));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToDevice(vectors.data(), items.vectors, floats));
  DeviceBuffer<float> bias;
  if (items.bias != nullptr) {
    FRESHET_ASSIGN_OR_RETURN(bias, ctx.Allocate<float>(items.rows));
    FRESHET_RETURN_IF_ERROR(ctx.CopyToDevice(bias.data(), items.bias, items.rows));
  }
  const DeviceItemMatrix device{vectors.data(), items.bias != nullptr ? bias.data() : nullptr,
                                items.rows, items.dim, items.stride};
  return TopKOnDevice(ctx, device, queries, k, results);
}

absl::Status CudaBackend::TopKDevice(const DeviceItemMatrix& items,
                                     absl::Span<const TopKQuery> queries, int k,
                                     absl::Span<std::vector<ScoredItem>> results) const {
  const ItemMatrixView as_view{items.vectors, items.bias, items.rows, items.dim, items.stride};
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(as_view, queries, k, results.size()));
  absl::MutexLock lock(&mu_);
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  return TopKOnDevice(*context_, items, queries, k, results);
}

absl::Status CudaBackend::TopKFromScores(const float* scores, int64_t n,
                                         absl::Span<const int32_t> exclude, int k,
                                         std::vector<ScoredItem>* result) const {
  FRESHET_RETURN_IF_ERROR(internal::ValidateSelectArgs(scores, n, exclude, k, result));
  result->clear();
  if (n == 0) return absl::OkStatus();
  const int k_eff = static_cast<int>(std::min<int64_t>(k, n));
  if (k_eff > kMaxDeviceK) {
    SelectTopK(scores, n, exclude, k, result);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  const CudaContext& ctx = *context_;
  FRESHET_RETURN_IF_ERROR(ctx.Activate());
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> device, ctx.Allocate<float>(n));
  FRESHET_RETURN_IF_ERROR(ctx.CopyToDevice(device.data(), scores, n));
  const TopKQuery one{nullptr, exclude};
  FRESHET_RETURN_IF_ERROR(MaskExcluded(ctx, absl::MakeConstSpan(&one, 1), 0, 1, n, device.data()));
  return SelectOnDevice(ctx, device.data(), n, 1, k_eff, absl::MakeSpan(result, 1));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend() {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(*backend));
}

}  // namespace freshet::kernels
