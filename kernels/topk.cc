#include "kernels/topk.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/internal/inner_product_top_k.h"
#include "kernels/internal/top_k_selector.h"

namespace freshet::kernels {

float ReferenceScore(const ItemMatrixView& items, const float* query, int64_t row) {
  FRESHET_CHECK(row >= 0 && row < items.rows);
  const float* x = items.vectors + row * items.stride;
  float score = 0.0f;
  for (int c = 0; c < items.dim; ++c) score = MulAdd(x[c], query[c], score);
  if (items.bias != nullptr) score += items.bias[row];
  return score;
}

void TopKInnerProduct(const ItemMatrixView& items, const float* query,
                      absl::Span<const int32_t> exclude, int k, std::vector<ScoredItem>* result) {
  FRESHET_CHECK(result != nullptr);
  const TopKQuery one{query, exclude};
  internal::InnerProductTopK(internal::BestSimdLevel(), items, absl::MakeConstSpan(&one, 1), k,
                             absl::MakeSpan(result, 1));
}

void TopKInnerProductBatch(const ItemMatrixView& items, absl::Span<const TopKQuery> queries, int k,
                           absl::Span<std::vector<ScoredItem>> results) {
  internal::InnerProductTopK(internal::BestSimdLevel(), items, queries, k, results);
}

void SelectTopK(const float* scores, int64_t n, absl::Span<const int32_t> exclude, int k,
                std::vector<ScoredItem>* result) {
  FRESHET_CHECK(k >= 1);
  FRESHET_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max());
  FRESHET_CHECK(n == 0 || scores != nullptr);
  FRESHET_CHECK(result != nullptr);
  result->clear();
  if (n == 0) return;
  internal::TopKSelector selector;
  selector.Reset(std::min<int64_t>(k, n), exclude);
  // Once the selector is full, most chunks hold nothing above the k-th best; a branch-free scan
  // (which the compiler vectorises) rules a chunk out before any per-score work.
  constexpr int64_t kChunk = 64;
  for (int64_t first = 0; first < n; first += kChunk) {
    const float* chunk = scores + first;
    const int64_t count = std::min(kChunk, n - first);
    if (selector.full() && count == kChunk) {
      const float threshold = selector.threshold();
      int above = 0;  // a count, not a bool: GCC 12 vectorises only the integer reduction
      for (int64_t i = 0; i < kChunk; ++i) above += chunk[i] > threshold;
      if (above == 0) continue;
    }
    for (int64_t i = 0; i < count; ++i) {
      const float score = chunk[i];
      if (selector.full() ? score > selector.threshold() : score == score) {
        selector.Offer(static_cast<int32_t>(first + i), score);
      }
    }
  }
  selector.TakeSorted(result);
}

}  // namespace freshet::kernels
