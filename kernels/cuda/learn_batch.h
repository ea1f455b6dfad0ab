// Micro-batch descriptions for the learning kernels, and their exact semantics. The CUDA kernels
// (bpr_batch.h, ials_fold_in.h) and their CPU references (reference.h) implement what is written
// here; the parity tests hold them to it. Plain C++: no CUDA headers.
//
// Tables are row-major float arrays with stride == dim: row r of a table of width w starts at
// element r * w. The same structs describe host arrays (for the references) and device arrays
// (for the kernels); each function says which.
#ifndef FRESHET_KERNELS_CUDA_LEARN_BATCH_H_
#define FRESHET_KERNELS_CUDA_LEARN_BATCH_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace freshet::kernels {

// ---------------------------------------------------------------------------------------------
// bpr: sampled softmax with logQ correction, row-wise Adagrad.
//
// Event e has a user row u, a positive item row i, `num_negatives` negative item rows (a slot
// holding -1 is empty) and `window` context item rows j_k with weights w_k (the user's latest
// items, newest first; -1 = empty). Its candidates are c = 0 (the positive) and c = 1 ..
// num_negatives (the non-empty negatives). With a = params.user_weight and q_c, b_c the
// candidate's item row and bias, all read from the state BEFORE the batch:
//
//   p   = a * users[u] + sum_k w_k items[j_k]          (the query: long- plus short-term part)
//   x_c = dot(p, q_c) + b_c - log_q[e][c]             (log_q: the sampling correction)
//   s_c = exp(x_c - max_c x_c) / sum_c exp(x_c - max_c x_c)
//   g_c = weight[e] * (s_c - [c == 0])                (d loss / d x_c, loss = -weight * log s_0)
//
// Gradients accumulate over the whole batch per distinct row:
//   GU[u]  += a * sum_c g_c q_c    GI[i_c] += g_c p        GB[i_c] += g_c
// (context rows get no gradient of their own: they are item rows, which learn as candidates; with
// a == 0 user rows are not updated at all). A row that appears several times (the same user in two
// events, an item that is a positive here and a negative there, the same negative twice) gets the
// SUM of its gradients. Then every distinct row that appears in the batch is updated exactly once
// (Adagrad, decoupled weight decay):
//   acc += |G|^2 / dim;  step = lr / sqrt(acc + epsilon);  row = (1 - step * l2) * row - step * G
// and every distinct candidate item's bias (no weight decay):
//   bias_acc += GB^2;  bias -= lr / sqrt(bias_acc + epsilon) * GB.
// With no repeated row in a batch this is the same as applying the events one at a time.
// The order of the floating-point sums is unspecified (the GPU sums with atomics), so two
// implementations agree within a tolerance, not bit for bit.
struct BprBatch {
  absl::Span<const int32_t> users;      // B user rows
  absl::Span<const int32_t> positives;  // B item rows
  absl::Span<const int32_t> negatives;  // B * num_negatives item rows, -1 = empty slot
  // B * (1 + num_negatives): log_q[e * (1 + num_negatives) + c] for candidate c of event e
  // (c = 0: the positive). Values of empty slots are ignored.
  absl::Span<const float> log_q;
  absl::Span<const float> weights;  // B event weights, or empty: every weight is 1
  int num_negatives = 0;
  // B * window context item rows (newest first, -1 = empty) and their weights w_k; both empty
  // when window == 0.
  absl::Span<const int32_t> context;
  absl::Span<const float> context_weights;
  int window = 0;
  int64_t size() const { return static_cast<int64_t>(users.size()); }
};

struct BprParams {
  float lr = 0.05f;
  float l2 = 0.0f;
  float epsilon = 1e-6f;
  float user_weight = 1.0f;  // a: weight of the user's own vector in the query
};

// The bpr state: user vectors and their row-wise Adagrad accumulators; item vectors, their
// accumulators, biases and bias accumulators. users: num_users rows; user_acc: num_users;
// items: num_items rows; item_acc, bias, bias_acc: num_items. Vector rows are `stride` floats
// apart (0 means dim: the device layout; host tables may pad rows, and padding is not touched).
struct BprTables {
  float* users = nullptr;
  float* user_acc = nullptr;
  float* items = nullptr;
  float* item_acc = nullptr;
  float* bias = nullptr;
  float* bias_acc = nullptr;
  int64_t num_users = 0;
  int64_t num_items = 0;
  int dim = 0;
  int64_t stride = 0;
  int64_t row_stride() const { return stride > 0 ? stride : dim; }
};

// The most candidates (1 + num_negatives) an event may have, and the longest context.
inline constexpr int kMaxBprCandidates = 1025;
inline constexpr int kMaxBprWindow = 1024;

// InvalidArgument unless: dim >= 1; 0 <= num_negatives < kMaxBprCandidates; 0 <= window <=
// kMaxBprWindow; the spans have the sizes above; every user row is in [0, num_users); every
// positive in [0, num_items); every negative and context row is -1 or in [0, num_items); every
// weight, context weight and log_q entry of a used slot is finite; lr > 0, l2 >= 0, epsilon > 0,
// user_weight >= 0 and finite.
absl::Status ValidateBprBatch(const BprBatch& batch, const BprParams& params, int64_t num_users,
                              int64_t num_items, int dim);

// ---------------------------------------------------------------------------------------------
// ials: batched closed-form user fold-in against the item Gramian G = sum_i q_i q_i^T (dim x dim).
//
// For batch entry b with user row u and observed items j (with confidences c_j), the new user
// vector p solves
//   (alpha0 * G + sum_j (c_j - alpha0) q_j q_j^T + lambda * I) p = sum_j c_j q_j + prior * p_old
// where p_old is users[u] before the batch (prior = 0 ignores it; the learner passes its
// long-term pull there and adds the same weight to lambda). The solve is a Cholesky
// factorisation. A system whose factorisation meets a pivot <= 0 (not positive definite, e.g.
// confidences below alpha0 or repeated items) leaves the row unchanged and is counted as failed.
struct IalsBatch {
  absl::Span<const int32_t> users;    // B distinct user rows
  absl::Span<const int64_t> offsets;  // B + 1, non-decreasing, offsets[0] == 0
  absl::Span<const int32_t> items;  // offsets[B] item rows; user b's are [offsets[b], offsets[b+1])
  absl::Span<const float> confidences;  // offsets[B] confidences, aligned with items
  int64_t size() const { return static_cast<int64_t>(users.size()); }
};

struct IalsParams {
  float alpha0 = 1.0f;  // weight of the unobserved items (of G)
  float lambda = 0.1f;  // ridge, > 0
  float prior = 0.0f;   // weight of p_old on the right-hand side, >= 0
};

// The largest dimension the fold-in kernel supports.
inline constexpr int kMaxIalsDim = 128;

// InvalidArgument unless: 1 <= dim <= kMaxIalsDim; offsets has B + 1 entries, starts at 0, never
// decreases and ends at items.size() == confidences.size(); user rows are in [0, num_users) and
// distinct; item rows in [0, num_items); confidences finite; alpha0 >= 0, lambda > 0, prior >= 0.
absl::Status ValidateIalsBatch(const IalsBatch& batch, const IalsParams& params, int64_t num_users,
                               int64_t num_items, int dim);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_LEARN_BATCH_H_
