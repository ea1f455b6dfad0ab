// ials batched user fold-in (semantics: kernels/cuda/learn_batch.h): one block per user builds
// its dim x dim system in shared memory, factorises it by Cholesky and solves, in float.
#include <cstdint>

#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels::cuda_internal {
namespace {

constexpr int kThreads = 256;

// Grid: one block per batch entry (blockIdx.x = b), kThreads threads. Dynamic shared memory:
// the matrix A (dim rows of ld = dim + 1 floats, the padding keeps column walks off one bank),
// then rhs (dim) and the current item row q (dim).
//   1. A = alpha0 G + lambda I, rhs = prior p_old; then per observed item j (one at a time, all
//      threads): A += (c_j - alpha0) q_j q_j^T, rhs += c_j q_j.
//   2. Right-looking Cholesky in the lower triangle: per column k, thread 0 takes the pivot's
//      square root (a pivot <= 0 or NaN fails the whole system), the threads scale column k below
//      the diagonal, then update the trailing lower triangle.
//   3. Forward (L y = rhs) and backward (L^T x = y) substitution in place in rhs, one column per
//      step, the threads splitting the rows.
__global__ void IalsFoldInKernel(float* users, uint8_t* user_dirty, const float* items,
                                 const float* gram, int dim, IalsDeviceBatch b, float alpha0,
                                 float lambda, float prior, int32_t* failed) {
  extern __shared__ float shared[];
  __shared__ int ok;
  const int d = dim;
  const int ld = d + 1;
  float* a = shared;
  float* rhs = a + d * ld;
  float* q = rhs + d;
  const int tid = threadIdx.x;
  const int64_t row = b.user_rows[blockIdx.x];
  float* p = users + row * d;

  for (int idx = tid; idx < d * d; idx += blockDim.x) {
    const int r = idx / d, s = idx % d;
    a[r * ld + s] = alpha0 * gram[idx] + (r == s ? lambda : 0.0f);
  }
  for (int r = tid; r < d; r += blockDim.x) rhs[r] = prior * p[r];
  if (tid == 0) ok = 1;
  __syncthreads();

  for (int64_t j = b.offsets[blockIdx.x]; j < b.offsets[blockIdx.x + 1]; ++j) {
    const float* item = items + static_cast<int64_t>(b.items[j]) * d;
    const float c = b.confidences[j];
    const float w = c - alpha0;
    for (int r = tid; r < d; r += blockDim.x) q[r] = item[r];
    __syncthreads();
    for (int idx = tid; idx < d * d; idx += blockDim.x) {
      const int r = idx / d, s = idx % d;
      a[r * ld + s] += w * q[r] * q[s];
    }
    for (int r = tid; r < d; r += blockDim.x) rhs[r] += c * q[r];
    __syncthreads();  // q is overwritten by the next item
  }

  for (int k = 0; k < d; ++k) {
    if (tid == 0) {
      const float pivot = a[k * ld + k];
      if (pivot > 0.0f) {
        a[k * ld + k] = sqrtf(pivot);
      } else {
        ok = 0;
      }
    }
    __syncthreads();
    if (!ok) break;  // `ok` is shared and read after the barrier: every thread leaves together
    const float l_kk = a[k * ld + k];
    for (int r = k + 1 + tid; r < d; r += blockDim.x) a[r * ld + k] /= l_kk;
    __syncthreads();
    const int n = d - k - 1;
    for (int idx = tid; idx < n * n; idx += blockDim.x) {
      const int r = k + 1 + idx / n;
      const int s = k + 1 + idx % n;
      if (s <= r) a[r * ld + s] -= a[r * ld + k] * a[s * ld + k];
    }
    __syncthreads();
  }
  if (!ok) {
    if (tid == 0) atomicAdd(failed, 1);
    return;
  }

  for (int k = 0; k < d; ++k) {
    if (tid == 0) rhs[k] /= a[k * ld + k];
    __syncthreads();
    for (int r = k + 1 + tid; r < d; r += blockDim.x) rhs[r] -= a[r * ld + k] * rhs[k];
    __syncthreads();
  }
  for (int k = d - 1; k >= 0; --k) {
    if (tid == 0) rhs[k] /= a[k * ld + k];
    __syncthreads();
    for (int r = tid; r < k; r += blockDim.x) rhs[r] -= a[k * ld + r] * rhs[k];
    __syncthreads();
  }
  for (int r = tid; r < d; r += blockDim.x) p[r] = rhs[r];
  if (tid == 0 && user_dirty != nullptr) user_dirty[row] = 1;
}

}  // namespace

cudaError_t LaunchIalsFoldIn(float* users, uint8_t* user_dirty, const float* items,
                             const float* gram, int dim, const IalsDeviceBatch& batch, float alpha0,
                             float lambda, float prior, int32_t* failed, cudaStream_t stream) {
  if (batch.users == 0) return cudaSuccess;
  const size_t shared =
      sizeof(float) * (static_cast<size_t>(dim) * (dim + 1) + 2 * static_cast<size_t>(dim));
  // Above 48 KiB (dim > ~108) a kernel must opt in to more dynamic shared memory (sm_80: up to
  // 163 KiB, sm_90: 227 KiB).
  cudaError_t err = cudaFuncSetAttribute(
      IalsFoldInKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (err != cudaSuccess) return err;
  IalsFoldInKernel<<<static_cast<unsigned int>(batch.users), kThreads, shared, stream>>>(
      users, user_dirty, items, gram, dim, batch, alpha0, lambda, prior, failed);
  return cudaGetLastError();
}

}  // namespace freshet::kernels::cuda_internal
