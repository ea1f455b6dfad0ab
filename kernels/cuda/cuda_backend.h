// CudaBackend: the Backend (kernels/backend.h) on a CUDA device. Exact inner-product top-K:
// scores by one cuBLAS SGEMM per block of queries (float, no reduced-precision math), bias added,
// exclude lists masked, then a tiled bitonic k-selection on the device; results are ordered by
// RanksBefore, exactly as the CPU backend orders them.
//
// Scores differ from the CPU's score contract (kernels/topk.h) in the last bits, because the GEMM
// sums in another order: for |q|, |x| ~ 1 and dim <= 128 the difference is below ~1e-5 relative to
// sum_c |q_c x_c|. Items whose scores are that close may therefore swap places or swap in and out
// at the k-th position; the parity tests compare within that tolerance, ties aside.
//
// This header pulls in no CUDA headers (backend_registry.cc includes it).
#ifndef FRESHET_KERNELS_CUDA_CUDA_BACKEND_H_
#define FRESHET_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels {

class CudaContext;

// An item matrix that already lives on the device (ItemMatrixView with device pointers), e.g. a
// DeviceTable: {table.data(), bias ? bias->data() : nullptr, table.rows(), table.dim(),
// table.dim()}. Serving from it avoids uploading the matrix per query batch.
struct DeviceItemMatrix {
  const float* vectors = nullptr;
  const float* bias = nullptr;
  int64_t rows = 0;
  int dim = 0;
  int64_t stride = 0;
};

// Thread-safe: calls are serialised on the backend's one context (its own stream); a batch of
// queries is one GEMM, so callers batch concurrent requests rather than calling in parallel.
class CudaBackend final : public Backend {
 public:
  // Unavailable (with the reason) without a usable device `device`.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(int device = 0);
  ~CudaBackend() override;

  std::string Name() const override { return "cuda"; }

  // The Backend contract and argument checks of CpuBackend (the same InvalidArgument messages).
  // The host matrix is uploaded on every call: for serving, keep the matrix on the device and use
  // TopKDevice. ResourceExhausted when device memory runs out; Internal for other device errors.
  absl::Status TopK(const ItemMatrixView& items, absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const override;

  // Uploads the scores and selects on the device (on the host when k > 1024).
  absl::Status TopKFromScores(const float* scores, int64_t n, absl::Span<const int32_t> exclude,
                              int k, std::vector<ScoredItem>* result) const override;

  // TopK over a device-resident matrix (on this backend's device); queries and exclude lists are
  // host memory. The matrix is read in stream order on the backend's stream, so work that the
  // caller enqueued through WithContext() before (a learning batch) is seen in full.
  absl::Status TopKDevice(const DeviceItemMatrix& items, absl::Span<const TopKQuery> queries, int k,
                          absl::Span<std::vector<ScoredItem>> results) const;

  // Runs `fn` with the backend's context while holding the backend's lock, e.g. to create device
  // tables or enqueue learning batches on the stream the top-K reads from.
  absl::Status WithContext(absl::FunctionRef<absl::Status(const CudaContext&)> fn) const;

  // "cuda: <device name> (sm_XY, N GiB)".
  std::string Description() const;

 private:
  explicit CudaBackend(std::unique_ptr<CudaContext> context);

  mutable absl::Mutex mu_;
  const std::unique_ptr<CudaContext> context_ ABSL_PT_GUARDED_BY(mu_);
};

// The registry's hook (backend_registry.cc): a CudaBackend on device 0, or Unavailable with the
// reason ("no usable CUDA device: ...").
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend();

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_CUDA_BACKEND_H_
