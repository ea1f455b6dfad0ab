// CpuBackend: the Backend on the host CPU, and the reference the other backends are tested
// against. Exact scores per the contract in kernels/topk.h, bit-identical for a query whatever
// batch it arrives in.
#ifndef FRESHET_KERNELS_CPU_BACKEND_H_
#define FRESHET_KERNELS_CPU_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels {

// Checks its arguments (InvalidArgument, see Backend and TopK below), then runs the kernels in
// kernels/topk.h on the calling thread; it starts no threads, so callers that want parallelism
// split the queries across their own threads.
//
// Thread-safe: holds no state; concurrent calls need distinct result storage.
class CpuBackend final : public Backend {
 public:
  std::string Name() const override { return "cpu"; }

  // InvalidArgument when k < 1; items.dim < 1; items.stride < items.dim; items.rows is negative or
  // above 2^31 - 1; items.vectors is null with rows > 0; results.size() != queries.size(); a
  // query vector is null; or an exclude list is not sorted ascending. Exclude entries outside
  // [0, items.rows) are ignored. Query vectors must hold items.dim floats (not checkable).
  absl::Status TopK(const ItemMatrixView& items, absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const override;

  // InvalidArgument when k < 1; n is negative or above 2^31 - 1; scores is null with n > 0;
  // result is null; or exclude is not sorted ascending.
  absl::Status TopKFromScores(const float* scores, int64_t n, absl::Span<const int32_t> exclude,
                              int k, std::vector<ScoredItem>* result) const override;
};

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CPU_BACKEND_H_
