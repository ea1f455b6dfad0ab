// The ials batched closed-form user fold-in on the device, and the item Gramian it solves
// against. Semantics: kernels/cuda/learn_batch.h (ReferenceIalsFoldIn in reference.h solves the
// same systems in double; the kernel solves them in float, one thread block per user).
#ifndef FRESHET_KERNELS_CUDA_IALS_FOLD_IN_H_
#define FRESHET_KERNELS_CUDA_IALS_FOLD_IN_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::kernels {

// *gram = sum over the table's rows of row row^T (dim x dim, row-major; symmetric), one cuBLAS
// SGEMM in float with no reduced-precision math. Reallocates *gram when its size is not dim * dim.
// ResourceExhausted when the device is out of memory.
absl::Status ComputeGramian(const CudaContext& context, const DeviceTable& table,
                            DeviceBuffer<float>* gram);

// Solves every batch entry's system against `gram` (dim x dim, e.g. from ComputeGramian over
// `items`) and writes the solutions into `users` (marking those rows dirty). Waits for the result
// and returns the number of failed (non positive definite) systems, whose rows are unchanged.
// InvalidArgument when ValidateIalsBatch fails, the widths differ or gram has the wrong size;
// ResourceExhausted when scratch memory runs out.
absl::StatusOr<int64_t> RunIalsFoldIn(const CudaContext& context, DeviceTable* users,
                                      const DeviceTable& items, const DeviceBuffer<float>& gram,
                                      const IalsBatch& batch, const IalsParams& params);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_IALS_FOLD_IN_H_
