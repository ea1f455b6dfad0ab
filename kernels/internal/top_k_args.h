// Argument checks shared by every Backend implementation, so that all backends reject the same
// inputs with the same messages. Folder-private.
#ifndef FRESHET_KERNELS_INTERNAL_TOP_K_ARGS_H_
#define FRESHET_KERNELS_INTERNAL_TOP_K_ARGS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels::internal {

// InvalidArgument unless: k >= 1; items.dim >= 1; items.stride >= items.dim;
// 0 <= items.rows <= 2^31 - 1; items.vectors is set when rows > 0; num_results ==
// queries.size(); every query vector is set; every exclude list is sorted ascending.
absl::Status ValidateTopKArgs(const ItemMatrixView& items, absl::Span<const TopKQuery> queries,
                              int k, size_t num_results);

// InvalidArgument unless: k >= 1; 0 <= n <= 2^31 - 1; scores is set when n > 0; result is set;
// exclude is sorted ascending.
absl::Status ValidateSelectArgs(const float* scores, int64_t n, absl::Span<const int32_t> exclude,
                                int k, const std::vector<ScoredItem>* result);

}  // namespace freshet::kernels::internal

#endif  // FRESHET_KERNELS_INTERNAL_TOP_K_ARGS_H_
