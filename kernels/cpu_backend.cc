#include "kernels/cpu_backend.h"

#include "common/status_macros.h"
#include "kernels/internal/top_k_args.h"
#include "kernels/topk.h"

namespace freshet::kernels {

absl::Status CpuBackend::TopK(const ItemMatrixView& items, absl::Span<const TopKQuery> queries,
                              int k, absl::Span<std::vector<ScoredItem>> results) const {
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(items, queries, k, results.size()));
  TopKInnerProductBatch(items, queries, k, results);
  return absl::OkStatus();
}

absl::Status CpuBackend::TopKFromScores(const float* scores, int64_t n,
                                        absl::Span<const int32_t> exclude, int k,
                                        std::vector<ScoredItem>* result) const {
  FRESHET_RETURN_IF_ERROR(internal::ValidateSelectArgs(scores, n, exclude, k, result));
  SelectTopK(scores, n, exclude, k, result);
  return absl::OkStatus();
}

}  // namespace freshet::kernels
