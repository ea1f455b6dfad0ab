// bpr micro-batch kernels (semantics: kernels/cuda/learn_batch.h). Two launches on one stream:
// gradients (reads the tables, accumulates per slot with atomics), then apply (one Adagrad step
// per distinct row), so every gradient sees the state before the batch.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels::cuda_internal {
namespace {

constexpr int kThreads = 128;  // 4 warps; the apply kernel's reduction assumes exactly this
constexpr int kWarp = 32;

// Grid: one block per event (blockIdx.x = e), kThreads threads. Dynamic shared memory: the query
// p (dim floats), then per candidate its logit / coefficient (m floats) and item row (m ints).
// Phase 0: the threads split the dimensions of p = a * user + sum_k w_k * context row k.
// Phase 1: warp w computes the logits of candidates w, w + 4, ... (lanes split the dot product).
// Phase 2: thread 0 turns logits into coefficients g_c (m <= 1025: a short serial loop).
// Phase 3: threads split the dimensions of the user gradient (sum over candidates) and the
// (candidate, dimension) pairs of the item gradients, and add them into the slots atomically.
__global__ void BprGradientsKernel(BprDeviceTables t, BprDeviceBatch b) {
  extern __shared__ float shared[];
  const int dim = t.dim;
  const int m = b.candidates;
  float* p = shared;
  float* g = shared + dim;
  int32_t* rows = reinterpret_cast<int32_t*>(shared + dim + m);
  const int64_t e = blockIdx.x;
  const int tid = threadIdx.x;

  const float* user = t.users + static_cast<int64_t>(b.user_rows[e]) * dim;
  const int32_t* context = b.context + e * b.window;
  const float* context_weights = b.context_weights + e * b.window;
  for (int d = tid; d < dim; d += blockDim.x) {
    float v = b.user_weight * user[d];
    for (int k = 0; k < b.window; ++k) {
      const int32_t j = context[k];
      if (j >= 0) v += context_weights[k] * t.items[static_cast<int64_t>(j) * dim + d];
    }
    p[d] = v;
  }
  for (int c = tid; c < m; c += blockDim.x) rows[c] = b.cand_rows[e * m + c];
  __syncthreads();

  const int warp = tid / kWarp;
  const int lane = tid % kWarp;
  const int warps = blockDim.x / kWarp;
  for (int c = warp; c < m; c += warps) {
    const int32_t row = rows[c];  // the same for every lane: the branch is warp-uniform
    if (row < 0) continue;
    const float* q = t.items + static_cast<int64_t>(row) * dim;
    float s = 0.0f;
    for (int d = lane; d < dim; d += kWarp) s += p[d] * q[d];
    for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
      s += __shfl_xor_sync(0xffffffffu, s, offset);
    }
    if (lane == 0) g[c] = s + t.bias[row] - b.log_q[e * m + c];
  }
  __syncthreads();

  if (tid == 0) {
    float max_x = -INFINITY;
    for (int c = 0; c < m; ++c) {
      if (rows[c] >= 0) max_x = fmaxf(max_x, g[c]);
    }
    float total = 0.0f;
    for (int c = 0; c < m; ++c) {
      if (rows[c] >= 0) total += expf(g[c] - max_x);
    }
    const float weight = b.weights[e];
    for (int c = 0; c < m; ++c) {
      g[c] = rows[c] >= 0 ? weight * (expf(g[c] - max_x) / total - (c == 0 ? 1.0f : 0.0f)) : 0.0f;
    }
  }
  __syncthreads();

  const int32_t user_slot = b.user_slots[e];
  if (user_slot >= 0) {
    float* user_grad = b.user_grad + static_cast<int64_t>(user_slot) * dim;
    for (int d = tid; d < dim; d += blockDim.x) {
      float sum = 0.0f;
      for (int c = 0; c < m; ++c) {
        if (rows[c] >= 0) sum += g[c] * t.items[static_cast<int64_t>(rows[c]) * dim + d];
      }
      atomicAdd(&user_grad[d], b.user_weight * sum);
    }
  }
  const int64_t pairs = static_cast<int64_t>(m) * dim;
  for (int64_t idx = tid; idx < pairs; idx += blockDim.x) {
    const int c = static_cast<int>(idx / dim);
    const int d = static_cast<int>(idx % dim);
    const int32_t slot = b.cand_slots[e * m + c];
    if (slot < 0) continue;
    atomicAdd(&b.item_grad[static_cast<int64_t>(slot) * dim + d], g[c] * p[d]);
  }
  for (int c = tid; c < m; c += blockDim.x) {
    const int32_t slot = b.cand_slots[e * m + c];
    if (slot >= 0) atomicAdd(&b.bias_grad[slot], g[c]);
  }
}

// Grid: one block per slot, user slots first (blockIdx.x < num_user_slots), then item slots;
// kThreads threads. The block reduces |G|^2, thread 0 updates the accumulator (and for items the
// bias), then the threads split the dimensions of the row update.
__global__ void BprApplyKernel(BprDeviceTables t, BprDeviceBatch b, float lr, float l2,
                               float epsilon) {
  __shared__ float partial[kThreads];
  __shared__ float step_shared;
  const int dim = t.dim;
  const int tid = threadIdx.x;
  const bool is_user = blockIdx.x < b.num_user_slots;
  const int64_t slot = is_user ? blockIdx.x : blockIdx.x - b.num_user_slots;
  const int64_t row = is_user ? b.slot_user_rows[slot] : b.slot_item_rows[slot];
  const float* grad = (is_user ? b.user_grad : b.item_grad) + slot * dim;
  float* vec = (is_user ? t.users : t.items) + row * dim;

  float sq = 0.0f;
  for (int d = tid; d < dim; d += kThreads) sq += grad[d] * grad[d];
  partial[tid] = sq;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (tid < s) partial[tid] += partial[tid + s];
    __syncthreads();
  }
  if (tid == 0) {
    float* acc = (is_user ? t.user_acc : t.item_acc) + row;
    const float a = *acc + partial[0] / static_cast<float>(dim);
    *acc = a;
    step_shared = lr / sqrtf(a + epsilon);
    if (is_user) {
      t.user_dirty[row] = 1;
    } else {
      const float gb = b.bias_grad[slot];
      const float ba = t.bias_acc[row] + gb * gb;
      t.bias_acc[row] = ba;
      t.bias[row] -= lr / sqrtf(ba + epsilon) * gb;
      t.item_dirty[row] = 1;
    }
  }
  __syncthreads();
  const float step = step_shared;
  const float keep = 1.0f - step * l2;
  for (int d = tid; d < dim; d += kThreads) vec[d] = keep * vec[d] - step * grad[d];
}

}  // namespace

cudaError_t LaunchBprGradients(const BprDeviceTables& tables, const BprDeviceBatch& batch,
                               cudaStream_t stream) {
  if (batch.events == 0) return cudaSuccess;
  const size_t shared = sizeof(float) * (static_cast<size_t>(tables.dim) + batch.candidates) +
                        sizeof(int32_t) * static_cast<size_t>(batch.candidates);
  BprGradientsKernel<<<static_cast<unsigned int>(batch.events), kThreads, shared, stream>>>(tables,
                                                                                            batch);
  return cudaGetLastError();
}

cudaError_t LaunchBprApply(const BprDeviceTables& tables, const BprDeviceBatch& batch, float lr,
                           float l2, float epsilon, cudaStream_t stream) {
  const int64_t blocks = batch.num_user_slots + batch.num_item_slots;
  if (blocks == 0) return cudaSuccess;
  BprApplyKernel<<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(tables, batch, lr, l2,
                                                                             epsilon);
  return cudaGetLastError();
}

}  // namespace freshet::kernels::cuda_internal
