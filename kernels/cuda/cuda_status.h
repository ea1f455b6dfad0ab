// Converters from CUDA runtime, cuBLAS and NCCL result codes to absl::Status, the one place that
// decides which failures are ResourceExhausted (out of device memory), Unavailable (no device or
// driver) and Internal (everything else: a bug, or a device that is no longer usable).
#ifndef FRESHET_KERNELS_CUDA_CUDA_STATUS_H_
#define FRESHET_KERNELS_CUDA_CUDA_STATUS_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace freshet::kernels {

// OK for cudaSuccess; otherwise "<what>: <CUDA error name>: <description>" with
// cudaErrorMemoryAllocation -> ResourceExhausted; no device, no or too old a driver ->
// Unavailable; anything else -> Internal.
absl::Status CudaStatus(cudaError_t error, absl::string_view what);

// OK for CUBLAS_STATUS_SUCCESS; CUBLAS_STATUS_ALLOC_FAILED -> ResourceExhausted; else Internal.
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);

// OK for ncclSuccess; ncclSystemError / ncclRemoteError -> Unavailable (a peer or the network);
// ncclInvalidArgument / ncclInvalidUsage -> InvalidArgument; else Internal.
absl::Status NcclStatus(ncclResult_t result, absl::string_view what);

}  // namespace freshet::kernels

// Returns the converted status from the enclosing function unless the call succeeded.
#define FRESHET_CUDA_RETURN_IF_ERROR(expr, what) \
  FRESHET_RETURN_IF_ERROR(::freshet::kernels::CudaStatus((expr), (what)))

#endif  // FRESHET_KERNELS_CUDA_CUDA_STATUS_H_
