// Element-wise kernels for device tables: fill, dirty-row compaction and gathering, and the
// delta arithmetic of the NCCL item-model sync. All use a 1-D grid-stride loop over the elements.
#include <cstdint>

#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels::cuda_internal {
namespace {

constexpr int kThreads = kGridStrideThreads;

__device__ __forceinline__ int64_t FirstIndex() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t GridStride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

__global__ void FillKernel(float* data, int64_t count, float value) {
  for (int64_t i = FirstIndex(); i < count; i += GridStride()) data[i] = value;
}

// Element i is row i.
__global__ void CompactDirtyKernel(uint8_t* flags, int64_t rows, int32_t* ids, int32_t* count) {
  for (int64_t r = FirstIndex(); r < rows; r += GridStride()) {
    if (flags[r] != 0) {
      flags[r] = 0;
      ids[atomicAdd(count, 1)] = static_cast<int32_t>(r);
    }
  }
}

// Element i is (row slot i / dim, column i % dim).
__global__ void GatherRowsKernel(const float* table, int dim, const int32_t* ids, int64_t total,
                                 float* out) {
  for (int64_t i = FirstIndex(); i < total; i += GridStride()) {
    out[i] = table[static_cast<int64_t>(ids[i / dim]) * dim + i % dim];
  }
}

// Element i is ids[i].
__global__ void MarkRowsKernel(uint8_t* flags, const int32_t* ids, int64_t count) {
  for (int64_t i = FirstIndex(); i < count; i += GridStride()) flags[ids[i]] = 1;
}

__global__ void SubtractKernel(const float* table, const float* base, float* delta, int64_t count) {
  for (int64_t i = FirstIndex(); i < count; i += GridStride()) delta[i] = table[i] - base[i];
}

// Element i is (row i / dim, column i % dim). Several threads may set the same row's flag to 1.
__global__ void ApplyDeltaKernel(float* table, float* base, const float* delta, int64_t total,
                                 int dim, uint8_t* flags) {
  for (int64_t i = FirstIndex(); i < total; i += GridStride()) {
    const float d = delta[i];
    const float v = base[i] + d;
    table[i] = v;
    base[i] = v;
    if (!(d == 0.0f)) flags[i / dim] = 1;
  }
}

}  // namespace

cudaError_t LaunchFill(float* data, int64_t count, float value, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  FillKernel<<<GridStrideBlocks(count), kThreads, 0, stream>>>(data, count, value);
  return cudaGetLastError();
}

cudaError_t LaunchCompactDirty(uint8_t* flags, int64_t rows, int32_t* ids, int32_t* count,
                               cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  CompactDirtyKernel<<<GridStrideBlocks(rows), kThreads, 0, stream>>>(flags, rows, ids, count);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* table, int dim, const int32_t* ids, int64_t count,
                             float* out, cudaStream_t stream) {
  const int64_t total = count * dim;
  if (total == 0) return cudaSuccess;
  GatherRowsKernel<<<GridStrideBlocks(total), kThreads, 0, stream>>>(table, dim, ids, total, out);
  return cudaGetLastError();
}

cudaError_t LaunchMarkRows(uint8_t* flags, const int32_t* ids, int64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  MarkRowsKernel<<<GridStrideBlocks(count), kThreads, 0, stream>>>(flags, ids, count);
  return cudaGetLastError();
}

cudaError_t LaunchSubtract(const float* table, const float* base, float* delta, int64_t count,
                           cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  SubtractKernel<<<GridStrideBlocks(count), kThreads, 0, stream>>>(table, base, delta, count);
  return cudaGetLastError();
}

cudaError_t LaunchApplyDelta(float* table, float* base, const float* delta, int64_t rows, int dim,
                             uint8_t* flags, cudaStream_t stream) {
  const int64_t total = rows * dim;
  if (total == 0) return cudaSuccess;
  ApplyDeltaKernel<<<GridStrideBlocks(total), kThreads, 0, stream>>>(table, base, delta, total, dim,
                                                                     flags);
  return cudaGetLastError();
}

}  // namespace freshet::kernels::cuda_internal
