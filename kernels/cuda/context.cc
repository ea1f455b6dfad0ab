#include "kernels/cuda/context.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/cublas_loader.h"

namespace freshet::kernels {

absl::StatusOr<int> CudaDeviceCount() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    // Any failure to enumerate (no driver, a driver too old for this runtime, no device) means
    // no usable device. The runtime keeps such an error sticky for this call only.
    (void)cudaGetLastError();
    return absl::UnavailableError(
        absl::StrCat("no usable CUDA device (no GPU, or no NVIDIA driver for CUDA ",
                     CUDART_VERSION / 1000, ".", CUDART_VERSION % 1000 / 10,
                     "): ", cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  if (count == 0) return absl::UnavailableError("no usable CUDA device: the driver reports none");
  return count;
}

absl::StatusOr<std::unique_ptr<CudaContext>> CudaContext::Create(int device) {
  FRESHET_ASSIGN_OR_RETURN(const int count, CudaDeviceCount());
  if (device < 0 || device >= count) {
    return absl::UnavailableError(
        absl::StrCat("CUDA device ", device, " does not exist (", count, " present)"));
  }
  FRESHET_CUDA_RETURN_IF_ERROR(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop{};
  FRESHET_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  const std::string description =
      absl::StrFormat("%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                      static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));

  // Keep freed stream-ordered allocations in the pool instead of returning them to the driver at
  // every synchronisation: that pool is the contexts' scratch memory.
  cudaMemPool_t pool = nullptr;
  FRESHET_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device),
                               "cudaDeviceGetDefaultMemPool");
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  FRESHET_CUDA_RETURN_IF_ERROR(
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
      "cudaMemPoolSetAttribute");

  FRESHET_ASSIGN_OR_RETURN(const cuda_internal::CublasApi* blas, cuda_internal::LoadCublas());
  cudaStream_t stream = nullptr;
  FRESHET_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                               "cudaStreamCreate");
  cublasHandle_t cublas = nullptr;
  absl::Status status = CublasStatus(blas->create(&cublas), "cublasCreate");
  if (status.ok()) status = CublasStatus(blas->set_stream(cublas, stream), "cublasSetStream");
  if (status.ok()) {
    status = CublasStatus(blas->set_math_mode(cublas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
  }
  if (!status.ok()) {
    if (cublas != nullptr) (void)blas->destroy(cublas);
    (void)cudaStreamDestroy(stream);
    return status;
  }
  return std::unique_ptr<CudaContext>(new CudaContext(device, stream, blas, cublas, description));
}

CudaContext::~CudaContext() {
  // Errors cannot be reported from a destructor; a broken device has reported them before.
  (void)cudaSetDevice(device_);
  (void)cudaStreamSynchronize(stream_);
  (void)blas_->destroy(cublas_);
  (void)cudaStreamDestroy(stream_);
}

absl::Status CudaContext::Activate() const {
  return CudaStatus(cudaSetDevice(device_), "cudaSetDevice");
}

absl::Status CudaContext::Synchronize() const {
  return CudaStatus(cudaStreamSynchronize(stream_), "CUDA stream");
}

absl::Status CudaContext::Sgemm(cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                int k, float alpha, const float* a, int lda, const float* b,
                                int ldb, float beta, float* c, int ldc,
                                absl::string_view what) const {
  return CublasStatus(
      blas_->sgemm(cublas_, transa, transb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc),
      absl::StrCat("cublasSgemm (", what, ")"));
}

absl::Status CudaContext::Zero(void* device, size_t bytes) const {
  if (bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemsetAsync(device, 0, bytes, stream_), "cudaMemsetAsync");
}

absl::Status CudaContext::AllocateBytes(int64_t count, size_t element_size, void** data) const {
  *data = nullptr;
  if (count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("device allocation of ", count, " elements"));
  }
  if (count == 0) return absl::OkStatus();
  const size_t bytes = static_cast<size_t>(count) * element_size;
  const cudaError_t error = cudaMallocAsync(data, bytes, stream_);
  if (error != cudaSuccess) {
    *data = nullptr;
    // An out-of-memory error is not sticky; clear it so later calls do not report it again.
    (void)cudaGetLastError();
    return CudaStatus(error, absl::StrCat("allocating ", bytes, " bytes on CUDA device ", device_));
  }
  return absl::OkStatus();
}

absl::Status CudaContext::CopyBytes(void* to, const void* from, size_t bytes,
                                    cudaMemcpyKind kind) const {
  if (bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(to, from, bytes, kind, stream_), "cudaMemcpyAsync");
}

}  // namespace freshet::kernels
