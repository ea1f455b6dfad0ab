#include "kernels/internal/top_k_args.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace freshet::kernels::internal {
namespace {

constexpr int64_t kMaxRows = std::numeric_limits<int32_t>::max();

absl::Status ValidateK(int k) {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("top-K: k must be >= 1, got ", k));
  return absl::OkStatus();
}

// Unsorted lists would make the exclusion cursor skip entries, silently returning seen items.
absl::Status ValidateExclude(absl::Span<const int32_t> exclude, absl::string_view what) {
  if (!std::is_sorted(exclude.begin(), exclude.end())) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: ", what, " exclude list is not sorted ascending"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTopKArgs(const ItemMatrixView& items, absl::Span<const TopKQuery> queries,
                              int k, size_t num_results) {
  FRESHET_RETURN_IF_ERROR(ValidateK(k));
  if (items.dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: item dim must be >= 1, got ", items.dim));
  }
  if (items.stride < items.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: item stride ", items.stride, " is smaller than dim ", items.dim));
  }
  if (items.rows < 0 || items.rows > kMaxRows) {
    return absl::InvalidArgumentError(absl::StrCat("top-K: item rows must be in [0, ", kMaxRows,
                                                   "] (int32 item rows), got ", items.rows));
  }
  if (items.rows > 0 && items.vectors == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: item vectors are null for ", items.rows, " rows"));
  }
  if (num_results != queries.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: ", queries.size(), " queries but ", num_results, " result slots"));
  }
  for (size_t q = 0; q < queries.size(); ++q) {
    if (queries[q].vector == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("top-K: query ", q, " has a null vector"));
    }
    FRESHET_RETURN_IF_ERROR(ValidateExclude(queries[q].exclude, absl::StrCat("query ", q)));
  }
  return absl::OkStatus();
}

absl::Status ValidateSelectArgs(const float* scores, int64_t n, absl::Span<const int32_t> exclude,
                                int k, const std::vector<ScoredItem>* result) {
  FRESHET_RETURN_IF_ERROR(ValidateK(k));
  if (n < 0 || n > kMaxRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-K: score count must be in [0, ", kMaxRows, "], got ", n));
  }
  if (n > 0 && scores == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("top-K: scores are null for ", n, " rows"));
  }
  if (result == nullptr) return absl::InvalidArgumentError("top-K: result is null");
  return ValidateExclude(exclude, "the");
}

}  // namespace freshet::kernels::internal
