// CudaContext: everything one piece of CUDA work needs — the device, an own (non-default) stream,
// a cuBLAS handle bound to that stream, and stream-ordered scratch memory — in one object that
// owns them (the faiss GpuResources pattern). DeviceBuffer: an owned device allocation.
//
// Errors are absl::Status (cuda_status.h): no device or driver -> Unavailable, out of device
// memory -> ResourceExhausted, anything else -> Internal. Nothing here aborts the process.
#ifndef FRESHET_KERNELS_CUDA_CONTEXT_H_
#define FRESHET_KERNELS_CUDA_CONTEXT_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::kernels {

namespace cuda_internal {
struct CublasApi;
}  // namespace cuda_internal

// The number of CUDA devices. Unavailable (with the runtime's reason) when there is none, when
// no driver is installed or when it is too old for this build: the process never needs libcuda
// to start, only to use a device.
absl::StatusOr<int> CudaDeviceCount();

// A typed device allocation of `size()` elements, allocated and freed in stream order on the
// stream of the context that made it (cudaMallocAsync / cudaFreeAsync: freed memory returns to the
// device's pool, which the context keeps, so short-lived scratch buffers are cheap). Move-only.
// The context that allocated it must outlive it. Not thread-safe.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      stream_ = std::exchange(other.stream_, nullptr);
    }
    return *this;
  }
  ~DeviceBuffer() { Reset(); }

  T* data() const { return data_; }
  int64_t size() const { return size_; }
  size_t bytes() const { return static_cast<size_t>(size_) * sizeof(T); }

  // Frees the memory (in stream order); the buffer becomes empty.
  void Reset() {
    if (data_ != nullptr) {
      // A failure here means the device is already broken; the error resurfaces at the next call
      // that checks one.
      (void)cudaFreeAsync(data_, stream_);
    }
    data_ = nullptr;
    size_ = 0;
  }

 private:
  friend class CudaContext;
  DeviceBuffer(T* data, int64_t size, cudaStream_t stream)
      : data_(data), size_(size), stream_(stream) {}

  T* data_ = nullptr;
  int64_t size_ = 0;
  cudaStream_t stream_ = nullptr;
};

// Thread-safety: not thread-safe. One thread at a time may enqueue work on a context (the owners,
// e.g. CudaBackend, serialise with a mutex); use one context per thread for concurrency.
class CudaContext {
 public:
  // Makes `device` current on the calling thread, creates a non-blocking stream and a cuBLAS
  // handle on it (pedantic math: no TF32 or other reduced precision in float GEMMs), and keeps
  // freed scratch memory in the device's pool. Unavailable without a device or driver, when
  // `device` is not in [0, CudaDeviceCount()), or when cuBLAS (libcublas.so.13, loaded on first
  // use) cannot be loaded.
  static absl::StatusOr<std::unique_ptr<CudaContext>> Create(int device = 0);

  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;
  // Waits for the stream, then destroys the handle and the stream.
  ~CudaContext();

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  // "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)".
  const std::string& description() const { return description_; }

  // Makes the device current on the calling thread (CUDA's current device is per thread). Every
  // public operation of the CUDA classes calls it first.
  absl::Status Activate() const;

  // C = alpha * op(A) * op(B) + beta * C in float on the stream (cuBLAS SGEMM, column-major).
  // `what` names the product in errors.
  absl::Status Sgemm(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                     float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                     float* c, int ldc, absl::string_view what) const;

  // Waits for all work enqueued on the stream; returns the first asynchronous error.
  absl::Status Synchronize() const;

  // `count` elements of uninitialised device memory, stream-ordered. ResourceExhausted when the
  // device is out of memory; InvalidArgument for a negative count. A zero count gives an empty
  // buffer.
  template <typename T>
  absl::StatusOr<DeviceBuffer<T>> Allocate(int64_t count) const {
    void* data = nullptr;
    absl::Status status = AllocateBytes(count, sizeof(T), &data);
    if (!status.ok()) return status;
    return DeviceBuffer<T>(static_cast<T*>(data), count, stream_);
  }

  // Stream-ordered copies between host and device (`count` elements). The host memory must stay
  // valid until the stream reaches the copy: call Synchronize() before reusing it (pageable host
  // memory makes host-to-device copies return only once the data is staged, so those are safe).
  template <typename T>
  absl::Status CopyToDevice(T* device, const T* host, int64_t count) const {
    return CopyBytes(device, host, static_cast<size_t>(count) * sizeof(T), cudaMemcpyHostToDevice);
  }
  template <typename T>
  absl::Status CopyToHost(T* host, const T* device, int64_t count) const {
    return CopyBytes(host, device, static_cast<size_t>(count) * sizeof(T), cudaMemcpyDeviceToHost);
  }
  template <typename T>
  absl::Status CopyOnDevice(T* to, const T* from, int64_t count) const {
    return CopyBytes(to, from, static_cast<size_t>(count) * sizeof(T), cudaMemcpyDeviceToDevice);
  }
  // Sets `bytes` bytes at `device` to zero, stream-ordered.
  absl::Status Zero(void* device, size_t bytes) const;

 private:
  CudaContext(int device, cudaStream_t stream, const cuda_internal::CublasApi* blas,
              cublasHandle_t cublas, std::string description)
      : device_(device),
        stream_(stream),
        blas_(blas),
        cublas_(cublas),
        description_(std::move(description)) {}
  absl::Status AllocateBytes(int64_t count, size_t element_size, void** data) const;
  absl::Status CopyBytes(void* to, const void* from, size_t bytes, cudaMemcpyKind kind) const;

  const int device_;
  cudaStream_t stream_;
  const cuda_internal::CublasApi* blas_;
  cublasHandle_t cublas_;
  const std::string description_;
};

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_CONTEXT_H_
