#include "kernels/cuda/ials_fold_in.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels {

absl::Status ComputeGramian(const CudaContext& context, const DeviceTable& table,
                            DeviceBuffer<float>* gram) {
  FRESHET_RETURN_IF_ERROR(context.Activate());
  const int dim = table.dim();
  const int64_t size = static_cast<int64_t>(dim) * dim;
  if (gram->size() != size) {
    FRESHET_ASSIGN_OR_RETURN(*gram, context.Allocate<float>(size));
  }
  if (table.rows() == 0) return context.Zero(gram->data(), gram->bytes());
  // Row-major rows x dim is column-major dim x rows (X, ld = dim); G = X X^T. G is symmetric, so
  // its column-major result reads the same row-major.
  return context.Sgemm(CUBLAS_OP_N, CUBLAS_OP_T, dim, dim, static_cast<int>(table.rows()), 1.0f,
                       table.data(), dim, table.data(), dim, 0.0f, gram->data(), dim, "Gramian");
}

absl::StatusOr<int64_t> RunIalsFoldIn(const CudaContext& context, DeviceTable* users,
                                      const DeviceTable& items, const DeviceBuffer<float>& gram,
                                      const IalsBatch& batch, const IalsParams& params) {
  if (users == nullptr) return absl::InvalidArgumentError("ials: no user table");
  const int dim = users->dim();
  if (items.dim() != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("ials: user width ", dim, " != item width ", items.dim()));
  }
  FRESHET_RETURN_IF_ERROR(ValidateIalsBatch(batch, params, users->rows(), items.rows(), dim));
  if (gram.size() != static_cast<int64_t>(dim) * dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("ials: the Gramian has ", gram.size(), " entries, expected ", dim * dim));
  }
  const int64_t b = batch.size();
  if (b == 0) return 0;
  FRESHET_RETURN_IF_ERROR(context.Activate());

  const int64_t n = batch.offsets[b];
  // int64 offsets first (8-byte aligned), then the int32 rows and the failure counter.
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int64_t> offsets, context.Allocate<int64_t>(b + 1));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ints, context.Allocate<int32_t>(b + n + 1));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> confidences, context.Allocate<float>(n));
  std::vector<int32_t> host_ints(batch.users.begin(), batch.users.end());
  host_ints.insert(host_ints.end(), batch.items.begin(), batch.items.end());
  host_ints.push_back(0);  // the failure counter
  FRESHET_RETURN_IF_ERROR(context.CopyToDevice(offsets.data(), batch.offsets.data(), b + 1));
  FRESHET_RETURN_IF_ERROR(context.CopyToDevice(ints.data(), host_ints.data(), b + n + 1));
  FRESHET_RETURN_IF_ERROR(context.CopyToDevice(confidences.data(), batch.confidences.data(), n));

  cuda_internal::IalsDeviceBatch d;
  d.users = b;
  d.user_rows = ints.data();
  d.offsets = offsets.data();
  d.items = ints.data() + b;
  d.confidences = confidences.data();
  int32_t* failed_device = ints.data() + b + n;
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchIalsFoldIn(users->data(), users->flags(), items.data(), gram.data(), dim,
                                      d, params.alpha0, params.lambda, params.prior, failed_device,
                                      context.stream()),
      "ials fold-in kernel");
  int32_t failed = 0;
  FRESHET_RETURN_IF_ERROR(context.CopyToHost(&failed, failed_device, 1));
  FRESHET_RETURN_IF_ERROR(context.Synchronize());
  return static_cast<int64_t>(failed);
}

}  // namespace freshet::kernels
