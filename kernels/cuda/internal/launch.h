// Host launchers of the CUDA kernels (one .cu file per operation, the __global__ functions private
// to it). Folder-private: the public classes in kernels/cuda/ validate arguments and call these.
// Every launcher enqueues work on `stream` and returns the launch error (cudaSuccess when the
// launch was accepted; errors of the kernel itself surface at the next synchronisation). Pointers
// are device pointers. Plain C++ plus the CUDA runtime types: no absl, so nvcc stays quick.
#ifndef FRESHET_KERNELS_CUDA_INTERNAL_LAUNCH_H_
#define FRESHET_KERNELS_CUDA_INTERNAL_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace freshet::kernels::cuda_internal {

// Element-wise (grid-stride) launches: kGridStrideThreads threads per block and a grid capped at
// 65535 blocks; each thread loops over the elements.
inline constexpr int kGridStrideThreads = 256;
inline unsigned int GridStrideBlocks(int64_t count) {
  const int64_t blocks = (count + kGridStrideThreads - 1) / kGridStrideThreads;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

// ---- top-K (topk_kernels.cu) ----

// Candidates per selection tile; a tile's k best survive each round.
inline constexpr int kSelectTile = 2048;
// The largest k selected on the device (a round must at least halve the candidates).
inline constexpr int kMaxDeviceK = kSelectTile / 2;

// scores[q * rows + i] += bias[i] for q < queries, i < rows.
cudaError_t LaunchAddBias(float* scores, int64_t rows, int64_t queries, const float* bias,
                          cudaStream_t stream);

// For query q < queries, scores[q * rows + r] = NaN for every r in
// excluded[offsets[q] .. offsets[q+1]) with 0 <= r < rows (NaN is never returned).
cudaError_t LaunchMaskExcluded(float* scores, int64_t rows, int queries, const int64_t* offsets,
                               const int32_t* excluded, cudaStream_t stream);

// One selection round. Input: per query q < queries, n candidates at in_scores[q * n + i] with
// item id in_items[q * n + i] (or i itself when in_items is null). Output: per query,
// ceil(n / kSelectTile) * kk entries at out[q * out_n + t * kk + j]: the kk best of tile t by
// RanksBefore (NaN last), best first, padded with NaN scores. Requires 1 <= kk <= kSelectTile,
// queries <= 65535; out_n = ceil(n / kSelectTile) * kk.
cudaError_t LaunchTileTopK(const float* in_scores, const int32_t* in_items, int64_t n, int queries,
                           int kk, float* out_scores, int32_t* out_items, cudaStream_t stream);

// ---- tables (table_kernels.cu) ----

cudaError_t LaunchFill(float* data, int64_t count, float value, cudaStream_t stream);

// For every row r < rows with flags[r] != 0: clears the flag and appends r to ids (in no
// particular order); *count (zeroed by the caller) receives the number appended.
cudaError_t LaunchCompactDirty(uint8_t* flags, int64_t rows, int32_t* ids, int32_t* count,
                               cudaStream_t stream);

// out[i * dim + c] = table[ids[i] * dim + c] for i < count.
cudaError_t LaunchGatherRows(const float* table, int dim, const int32_t* ids, int64_t count,
                             float* out, cudaStream_t stream);

// flags[ids[i]] = 1 for i < count.
cudaError_t LaunchMarkRows(uint8_t* flags, const int32_t* ids, int64_t count, cudaStream_t stream);

// delta[i] = table[i] - base[i] for i < count.
cudaError_t LaunchSubtract(const float* table, const float* base, float* delta, int64_t count,
                           cudaStream_t stream);

// table[i] = base[i] + delta[i]; base[i] = table[i]; flags[i / dim] = 1 where delta[i] != 0
// (or is NaN), for i < rows * dim.
cudaError_t LaunchApplyDelta(float* table, float* base, const float* delta, int64_t rows, int dim,
                             uint8_t* flags, cudaStream_t stream);

// ---- bpr (bpr_kernels.cu) ----

// One micro-batch, prepared by the host: distinct rows got dense "slots" (0 .. num_user_slots-1,
// 0 .. num_item_slots-1); gradients are accumulated per slot.
struct BprDeviceBatch {
  int64_t events = 0;
  int candidates = 0;                      // m = 1 + num_negatives
  const int32_t* user_rows = nullptr;      // [events]
  const int32_t* user_slots = nullptr;     // [events]
  const int32_t* cand_rows = nullptr;      // [events * m], -1 = empty slot
  const int32_t* cand_slots = nullptr;     // [events * m], -1 = empty slot
  const float* log_q = nullptr;            // [events * m]
  const float* weights = nullptr;          // [events]
  int window = 0;                          // context rows per event
  const int32_t* context = nullptr;        // [events * window], -1 = empty
  const float* context_weights = nullptr;  // [events * window]
  float user_weight = 1.0f;                // a; user_slots are all -1 when a == 0
  int64_t num_user_slots = 0;
  int64_t num_item_slots = 0;
  const int32_t* slot_user_rows = nullptr;  // [num_user_slots]
  const int32_t* slot_item_rows = nullptr;  // [num_item_slots]
  float* user_grad = nullptr;               // [num_user_slots * dim], zeroed
  float* item_grad = nullptr;               // [num_item_slots * dim], zeroed
  float* bias_grad = nullptr;               // [num_item_slots], zeroed
};

struct BprDeviceTables {
  float* users = nullptr;
  float* user_acc = nullptr;
  float* items = nullptr;
  float* item_acc = nullptr;
  float* bias = nullptr;
  float* bias_acc = nullptr;
  uint8_t* user_dirty = nullptr;
  uint8_t* item_dirty = nullptr;
  int dim = 0;
};

// Accumulates every event's gradients into the batch's slots (reads the tables only).
cudaError_t LaunchBprGradients(const BprDeviceTables& tables, const BprDeviceBatch& batch,
                               cudaStream_t stream);

// Applies the accumulated gradients: one Adagrad step per user slot and per item slot (vector and
// bias), marking the rows dirty.
cudaError_t LaunchBprApply(const BprDeviceTables& tables, const BprDeviceBatch& batch, float lr,
                           float l2, float epsilon, cudaStream_t stream);

// ---- ials (ials_kernels.cu) ----

struct IalsDeviceBatch {
  int64_t users = 0;                   // B
  const int32_t* user_rows = nullptr;  // [B]
  const int64_t* offsets = nullptr;    // [B + 1]
  const int32_t* items = nullptr;      // [offsets[B]]
  const float* confidences = nullptr;  // [offsets[B]]
};

// Solves every user's system (learn_batch.h) and writes the solution into users[row]; marks the
// row dirty (user_dirty may be null). Each failed (non positive definite) system leaves its row
// alone and adds 1 to *failed (zeroed by the caller). Requires 1 <= dim <= 128.
cudaError_t LaunchIalsFoldIn(float* users, uint8_t* user_dirty, const float* items,
                             const float* gram, int dim, const IalsDeviceBatch& batch, float alpha0,
                             float lambda, float prior, int32_t* failed, cudaStream_t stream);

}  // namespace freshet::kernels::cuda_internal

#endif  // FRESHET_KERNELS_CUDA_INTERNAL_LAUNCH_H_
