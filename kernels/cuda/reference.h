// CPU references of the CUDA learning kernels: the semantics of learn_batch.h written out in
// plain, sequential C++ (float arithmetic for bpr, double for the ials solve). They are slow and
// meant for tests: every CUDA learning kernel is checked against them on the same seeded inputs.
// Built whether or not CUDA is on (target freshet_kernels_cuda_reference).
//
// Thread-safety: the functions share no state; concurrent calls on distinct tables are safe.
#ifndef FRESHET_KERNELS_CUDA_REFERENCE_H_
#define FRESHET_KERNELS_CUDA_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::kernels {

// The query p of event `e` of `batch` (learn_batch.h), from the current host tables (dim floats).
std::vector<float> ReferenceBprQuery(const BprTables& tables, const BprBatch& batch,
                                     const BprParams& params, int64_t e);

// g_c for event `e` of `batch` (learn_batch.h), from the current host tables: one coefficient per
// candidate slot, 1 + num_negatives of them, 0 for empty slots. Requires a valid batch.
std::vector<float> ReferenceBprCoefficients(const BprTables& tables, const BprBatch& batch,
                                            const BprParams& params, int64_t e);

// Applies one bpr micro-batch to host tables, exactly as learn_batch.h describes.
// InvalidArgument (tables untouched) when ValidateBprBatch fails.
absl::Status ReferenceBprBatch(const BprTables& tables, const BprBatch& batch,
                               const BprParams& params);

// G = sum_r table[r] table[r]^T over `rows` rows of width `dim` (row-major dim x dim), summed in
// double and rounded to float once.
std::vector<float> ReferenceGramian(const float* table, int64_t rows, int dim);

// The ials fold-in of learn_batch.h on host tables: `users` (num_users x dim) is updated in place
// from `items` (num_items x dim) and `gram` (dim x dim). Systems are assembled and solved in
// double. Returns the number of failed (non positive definite) systems, whose rows are left
// unchanged; InvalidArgument (tables untouched) when ValidateIalsBatch fails or gram has the wrong
// size.
absl::StatusOr<int64_t> ReferenceIalsFoldIn(float* users, int64_t num_users, const float* items,
                                            int64_t num_items, int dim,
                                            absl::Span<const float> gram, const IalsBatch& batch,
                                            const IalsParams& params);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_REFERENCE_H_
