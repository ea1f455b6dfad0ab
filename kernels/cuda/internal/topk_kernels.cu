// Top-K selection kernels: bias add, exclude masking and the tiled bitonic selection round.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels::cuda_internal {
namespace {

constexpr int kThreads = kGridStrideThreads;

// RanksBefore (kernels/backend.h) with NaN scores last: a NaN never ranks before anything.
__device__ __forceinline__ bool Better(float a_score, int32_t a_item, float b_score,
                                       int32_t b_item) {
  if (isnan(a_score)) return false;
  if (isnan(b_score)) return true;
  return a_score > b_score || (a_score == b_score && a_item < b_item);
}

// Grid: 1-D grid-stride over queries * rows elements; element i is (q = i / rows, r = i % rows).
__global__ void AddBiasKernel(float* scores, int64_t rows, int64_t total, const float* bias) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    scores[i] += bias[i % rows];
  }
}

// Grid: one block per query (blockIdx.x = q); the block's threads stride over its exclude list.
__global__ void MaskExcludedKernel(float* scores, int64_t rows, const int64_t* offsets,
                                   const int32_t* excluded) {
  const int64_t q = blockIdx.x;
  for (int64_t e = offsets[q] + threadIdx.x; e < offsets[q + 1]; e += blockDim.x) {
    const int64_t r = excluded[e];
    if (r >= 0 && r < rows) scores[q * rows + r] = nanf("");
  }
}

// Grid: blockIdx.x = tile t, blockIdx.y = query q; kThreads threads. The block loads tile t's
// kSelectTile candidates (positions t * kSelectTile + i, padded with NaN) into shared memory,
// bitonic-sorts them best first, and writes the first kk to the tile's output slot.
__global__ void TileTopKKernel(const float* in_scores, const int32_t* in_items, int64_t n, int kk,
                               float* out_scores, int32_t* out_items, int64_t out_n) {
  __shared__ float score[kSelectTile];
  __shared__ int32_t item[kSelectTile];
  const int64_t q = blockIdx.y;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kSelectTile;
  const float* scores_q = in_scores + q * n;
  const int32_t* items_q = in_items == nullptr ? nullptr : in_items + q * n;
  for (int i = threadIdx.x; i < kSelectTile; i += blockDim.x) {
    const int64_t g = first + i;
    if (g < n) {
      score[i] = scores_q[g];
      item[i] = items_q == nullptr ? static_cast<int32_t>(g) : items_q[g];
    } else {
      score[i] = nanf("");
      item[i] = INT32_MAX;
    }
  }
  __syncthreads();
  // Bitonic sort: for each merge size, each stride; pair (i, i ^ stride) with i < partner is
  // ordered best-first when (i & size) == 0, worst-first otherwise. At size == kSelectTile every
  // pair is best-first, so the whole tile ends sorted best first.
  for (int size = 2; size <= kSelectTile; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < kSelectTile; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool best_first = (i & size) == 0;
          const float si = score[i], sj = score[j];
          const int32_t ii = item[i], ij = item[j];
          const bool swap = best_first ? Better(sj, ij, si, ii) : Better(si, ii, sj, ij);
          if (swap) {
            score[i] = sj;
            score[j] = si;
            item[i] = ij;
            item[j] = ii;
          }
        }
      }
      __syncthreads();
    }
  }
  const int64_t out_first = q * out_n + static_cast<int64_t>(blockIdx.x) * kk;
  for (int j = threadIdx.x; j < kk; j += blockDim.x) {
    out_scores[out_first + j] = score[j];
    out_items[out_first + j] = item[j];
  }
}

}  // namespace

cudaError_t LaunchAddBias(float* scores, int64_t rows, int64_t queries, const float* bias,
                          cudaStream_t stream) {
  const int64_t total = rows * queries;
  if (total == 0) return cudaSuccess;
  AddBiasKernel<<<GridStrideBlocks(total), kThreads, 0, stream>>>(scores, rows, total, bias);
  return cudaGetLastError();
}

cudaError_t LaunchMaskExcluded(float* scores, int64_t rows, int queries, const int64_t* offsets,
                               const int32_t* excluded, cudaStream_t stream) {
  if (queries == 0) return cudaSuccess;
  MaskExcludedKernel<<<queries, kThreads, 0, stream>>>(scores, rows, offsets, excluded);
  return cudaGetLastError();
}

cudaError_t LaunchTileTopK(const float* in_scores, const int32_t* in_items, int64_t n, int queries,
                           int kk, float* out_scores, int32_t* out_items, cudaStream_t stream) {
  if (queries == 0 || n == 0) return cudaSuccess;
  const int64_t tiles = (n + kSelectTile - 1) / kSelectTile;
  const dim3 grid(static_cast<unsigned int>(tiles), static_cast<unsigned int>(queries));
  TileTopKKernel<<<grid, kThreads, 0, stream>>>(in_scores, in_items, n, kk, out_scores, out_items,
                                                tiles * kk);
  return cudaGetLastError();
}

}  // namespace freshet::kernels::cuda_internal
