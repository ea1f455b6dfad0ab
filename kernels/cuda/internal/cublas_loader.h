// cuBLAS, loaded on first use with dlopen rather than linked: libcublasLt alone is ~500 MiB, and
// linking it makes every freshet process (and every test) spend ~0.1 s and ~200 MiB of page cache
// at start-up, device or not. Only the handful of functions freshet calls are resolved.
// Folder-private.
#ifndef FRESHET_KERNELS_CUDA_INTERNAL_CUBLAS_LOADER_H_
#define FRESHET_KERNELS_CUDA_INTERNAL_CUBLAS_LOADER_H_

#include <cublas_v2.h>

#include "absl/status/statusor.h"

namespace freshet::kernels::cuda_internal {

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

// The loaded API (loaded once per process, thread-safe), or Unavailable naming the library that
// could not be loaded or the symbol that is missing.
absl::StatusOr<const CublasApi*> LoadCublas();

}  // namespace freshet::kernels::cuda_internal

#endif  // FRESHET_KERNELS_CUDA_INTERNAL_CUBLAS_LOADER_H_
