// The CPU references of the CUDA learning kernels, checked on the CPU against the mathematics
// they implement (learn_batch.h): these run on every machine, with or without CUDA.
#include "kernels/cuda/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "kernels/cuda/learn_batch.h"
#include "tests/kernels/cuda/uniform_values.h"

namespace freshet::kernels {
namespace {

using testing_util::Uniform;

// Host bpr state with seeded random values.
struct HostBpr {
  HostBpr(int64_t num_users, int64_t num_items, int dim, uint64_t seed) : dim(dim) {
    Rng rng(seed);
    users = Uniform(static_cast<size_t>(num_users * dim), -0.5f, 0.5f, rng);
    user_acc = Uniform(static_cast<size_t>(num_users), 0.0f, 0.2f, rng);
    items = Uniform(static_cast<size_t>(num_items * dim), -0.5f, 0.5f, rng);
    item_acc = Uniform(static_cast<size_t>(num_items), 0.0f, 0.2f, rng);
    bias = Uniform(static_cast<size_t>(num_items), -0.3f, 0.3f, rng);
    bias_acc = Uniform(static_cast<size_t>(num_items), 0.0f, 0.2f, rng);
  }
  BprTables tables() {
    return BprTables{users.data(),
                     user_acc.data(),
                     items.data(),
                     item_acc.data(),
                     bias.data(),
                     bias_acc.data(),
                     static_cast<int64_t>(user_acc.size()),
                     static_cast<int64_t>(item_acc.size()),
                     dim,
                     0};
  }
  int dim;
  std::vector<float> users, user_acc, items, item_acc, bias, bias_acc;
};

// One event's arrays, for building single-event batches.
struct OwnedBatch {
  std::vector<int32_t> users, positives, negatives;
  std::vector<float> log_q, weights;
  int num_negatives = 0;
  BprBatch view() const {
    return BprBatch{users, positives, negatives, log_q, weights, num_negatives, {}, {}, 0};
  }
  OwnedBatch Event(int64_t e) const {
    const int m = 1 + num_negatives;
    OwnedBatch one;
    one.num_negatives = num_negatives;
    one.users = {users[e]};
    one.positives = {positives[e]};
    one.negatives.assign(negatives.begin() + e * num_negatives,
                         negatives.begin() + (e + 1) * num_negatives);
    one.log_q.assign(log_q.begin() + e * m, log_q.begin() + (e + 1) * m);
    one.weights = {weights[e]};
    return one;
  }
};

TEST(CudaReferenceBprTest, CoefficientsSumToZeroAndFavourThePositiveDirection) {
  HostBpr state(4, 20, 8, 1);
  OwnedBatch batch;
  batch.num_negatives = 3;
  batch.users = {2};
  batch.positives = {5};
  batch.negatives = {7, -1, 11};
  batch.log_q = {0.1f, -0.2f, 99.0f, 0.3f};  // the empty slot's value is ignored
  batch.weights = {2.0f};
  const std::vector<float> g =
      ReferenceBprCoefficients(state.tables(), batch.view(), BprParams{}, 0);
  ASSERT_EQ(g.size(), 4u);
  EXPECT_LT(g[0], 0.0f);  // raise the positive's logit
  EXPECT_GT(g[1], 0.0f);
  EXPECT_EQ(g[2], 0.0f);  // empty slot
  EXPECT_GT(g[3], 0.0f);
  // weight * (softmax - one-hot) sums to zero.
  EXPECT_NEAR(g[0] + g[1] + g[2] + g[3], 0.0f, 1e-6f);
  EXPECT_GT(g[0], -2.0f);
}

TEST(CudaReferenceBprTest, BatchWithoutRepeatedRowsEqualsEventsOneByOne) {
  constexpr int kEvents = 8, kNegatives = 3, kDim = 16;
  HostBpr batched(20, 64, kDim, 2);
  HostBpr sequential = batched;
  Rng rng(3);
  std::vector<int32_t> user_perm(20), item_perm(64);
  std::iota(user_perm.begin(), user_perm.end(), 0);
  std::iota(item_perm.begin(), item_perm.end(), 0);
  for (size_t i = user_perm.size(); i > 1; --i)
    std::swap(user_perm[i - 1], user_perm[rng.Below(i)]);
  for (size_t i = item_perm.size(); i > 1; --i)
    std::swap(item_perm[i - 1], item_perm[rng.Below(i)]);
  OwnedBatch batch;
  batch.num_negatives = kNegatives;
  int next_item = 0;
  for (int e = 0; e < kEvents; ++e) {
    batch.users.push_back(user_perm[e]);
    batch.positives.push_back(item_perm[next_item++]);
    for (int n = 0; n < kNegatives; ++n) {
      batch.negatives.push_back(e % 3 == 1 && n == 1 ? -1 : item_perm[next_item++]);
    }
    for (int c = 0; c <= kNegatives; ++c) batch.log_q.push_back(rng.UniformFloat() - 0.5f);
    batch.weights.push_back(0.5f + rng.UniformFloat());
  }
  const BprParams params{0.1f, 0.01f, 1e-6f, 1.0f};
  ASSERT_TRUE(ReferenceBprBatch(batched.tables(), batch.view(), params).ok());
  for (int e = 0; e < kEvents; ++e) {
    const OwnedBatch one = batch.Event(e);
    ASSERT_TRUE(ReferenceBprBatch(sequential.tables(), one.view(), params).ok());
  }
  EXPECT_EQ(batched.users, sequential.users);
  EXPECT_EQ(batched.user_acc, sequential.user_acc);
  EXPECT_EQ(batched.items, sequential.items);
  EXPECT_EQ(batched.item_acc, sequential.item_acc);
  EXPECT_EQ(batched.bias, sequential.bias);
  EXPECT_EQ(batched.bias_acc, sequential.bias_acc);
  // And something moved.
  EXPECT_NE(batched.users, HostBpr(20, 64, kDim, 2).users);
}

TEST(CudaReferenceBprTest, RepeatedRowsAccumulateTheirGradientsAndStepOnce) {
  constexpr int kDim = 8;
  const HostBpr before(3, 10, kDim, 4);
  HostBpr after = before;
  HostBpr scratch = before;
  // User 1 in both events; item 4 is event 0's positive and event 1's negative.
  OwnedBatch batch;
  batch.num_negatives = 2;
  batch.users = {1, 1};
  batch.positives = {4, 6};
  batch.negatives = {2, 3, 4, 8};
  batch.log_q = {0.1f, 0.2f, -0.1f, 0.0f, 0.3f, 0.2f};
  batch.weights = {1.0f, 1.5f};
  const BprParams params{0.2f, 0.05f, 1e-6f, 1.0f};
  ASSERT_TRUE(ReferenceBprBatch(after.tables(), batch.view(), params).ok());

  const std::vector<float> g0 =
      ReferenceBprCoefficients(scratch.tables(), batch.view(), BprParams{}, 0);
  const std::vector<float> g1 =
      ReferenceBprCoefficients(scratch.tables(), batch.view(), BprParams{}, 1);
  const float* p = before.users.data() + 1 * kDim;
  const auto q = [&](int32_t item) { return before.items.data() + item * kDim; };
  const auto expect_step = [&](const float* row, float acc, const std::vector<double>& grad,
                               const float* row_after, float acc_after) {
    double sq = 0;
    for (double x : grad) sq += x * x;
    const double new_acc = acc + sq / kDim;
    EXPECT_NEAR(acc_after, new_acc, 1e-6);
    const double step = params.lr / std::sqrt(new_acc + params.epsilon);
    for (int d = 0; d < kDim; ++d) {
      EXPECT_NEAR(row_after[d], (1.0 - step * params.l2) * row[d] - step * grad[d], 1e-6) << d;
    }
  };
  // The user's gradient is the sum over both events' candidates.
  std::vector<double> grad_user(kDim, 0.0);
  const int32_t cands0[] = {4, 2, 3}, cands1[] = {6, 4, 8};
  for (int c = 0; c < 3; ++c) {
    for (int d = 0; d < kDim; ++d)
      grad_user[d] += g0[c] * q(cands0[c])[d] + g1[c] * q(cands1[c])[d];
  }
  expect_step(p, before.user_acc[1], grad_user, after.users.data() + 1 * kDim, after.user_acc[1]);
  // Item 4: positive of event 0 (g0[0]) and negative of event 1 (g1[1]), one step.
  std::vector<double> grad_item(kDim);
  for (int d = 0; d < kDim; ++d) grad_item[d] = (g0[0] + g1[1]) * p[d];
  expect_step(q(4), before.item_acc[4], grad_item, after.items.data() + 4 * kDim,
              after.item_acc[4]);
  const double gb = g0[0] + g1[1];
  EXPECT_NEAR(after.bias_acc[4], before.bias_acc[4] + gb * gb, 1e-6);
  EXPECT_NEAR(after.bias[4],
              before.bias[4] - params.lr / std::sqrt(before.bias_acc[4] + gb * gb + 1e-6) * gb,
              1e-6);
  // Rows outside the batch are untouched.
  EXPECT_EQ(std::vector<float>(after.users.begin(), after.users.begin() + kDim),
            std::vector<float>(before.users.begin(), before.users.begin() + kDim));
  EXPECT_EQ(after.bias[9], before.bias[9]);
}

TEST(CudaReferenceBprTest, InvalidBatchesAreRejectedAndLeaveTheTablesAlone) {
  HostBpr state(3, 10, 4, 5);
  const HostBpr before = state;
  OwnedBatch batch;
  batch.num_negatives = 1;
  batch.users = {0};
  batch.positives = {1};
  batch.negatives = {10};  // out of range
  batch.log_q = {0.0f, 0.0f};
  batch.weights = {1.0f};
  absl::Status status = ReferenceBprBatch(state.tables(), batch.view(), BprParams{});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  batch.negatives = {-1};
  batch.users = {3};  // out of range
  EXPECT_EQ(ReferenceBprBatch(state.tables(), batch.view(), BprParams{}).code(),
            absl::StatusCode::kInvalidArgument);
  batch.users = {0};
  batch.log_q = {0.0f};  // wrong size
  EXPECT_EQ(ReferenceBprBatch(state.tables(), batch.view(), BprParams{}).code(),
            absl::StatusCode::kInvalidArgument);
  batch.log_q = {0.0f, 0.0f};
  EXPECT_EQ(
      ReferenceBprBatch(state.tables(), batch.view(), BprParams{0.0f, 0.0f, 1e-6f, 1.0f}).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.users, before.users);
  EXPECT_EQ(state.items, before.items);
  EXPECT_TRUE(ReferenceBprBatch(state.tables(), batch.view(), BprParams{}).ok());
}

TEST(CudaReferenceBprTest, TheQueryAddsWeightedContextRowsAndUsersLearnScaledByTheirWeight) {
  constexpr int kDim = 6;
  HostBpr state(2, 8, kDim, 9);
  const HostBpr before = state;
  OwnedBatch owned;
  owned.num_negatives = 2;
  owned.users = {1};
  owned.positives = {3};
  owned.negatives = {5, 6};
  owned.log_q = {-1.0f, -0.5f, -2.0f};
  owned.weights = {1.5f};
  const std::vector<int32_t> context = {2, -1, 4};  // newest first, one empty slot
  const std::vector<float> context_weights = {0.3f, 9.0f, 0.2f};
  BprBatch batch = owned.view();
  batch.context = context;
  batch.context_weights = context_weights;
  batch.window = 3;
  BprParams params{0.1f, 0.01f, 1e-6f, 0.5f};

  const std::vector<float> p = ReferenceBprQuery(state.tables(), batch, params, 0);
  for (int d = 0; d < kDim; ++d) {
    const float expected = 0.5f * state.users[1 * kDim + d] + 0.3f * state.items[2 * kDim + d] +
                           0.2f * state.items[4 * kDim + d];
    EXPECT_NEAR(p[d], expected, 1e-6f) << d;
  }
  const std::vector<float> g = ReferenceBprCoefficients(state.tables(), batch, params, 0);
  ASSERT_TRUE(ReferenceBprBatch(state.tables(), batch, params).ok());
  // The user's gradient is a * sum_c g_c q_c; one Adagrad step.
  std::vector<float> grad(kDim, 0.0f);
  const int32_t candidates[] = {3, 5, 6};
  for (int c = 0; c < 3; ++c) {
    for (int d = 0; d < kDim; ++d) grad[d] += 0.5f * g[c] * before.items[candidates[c] * kDim + d];
  }
  float sq = 0.0f;
  for (float x : grad) sq += x * x;
  const float acc = before.user_acc[1] + sq / kDim;
  EXPECT_NEAR(state.user_acc[1], acc, 1e-6f);
  const float step = 0.1f / std::sqrt(acc + 1e-6f);
  for (int d = 0; d < kDim; ++d) {
    EXPECT_NEAR(state.users[1 * kDim + d],
                (1.0f - step * 0.01f) * before.users[1 * kDim + d] - step * grad[d], 1e-6f);
  }
  // A candidate moves along g_c * p; context rows that are not candidates, and the other user,
  // do not move.
  const float item_acc = before.item_acc[5] + [&] {
    float s = 0.0f;
    for (float x : p) s += g[1] * x * g[1] * x;
    return s / kDim;
  }();
  EXPECT_NEAR(state.item_acc[5], item_acc, 1e-6f);
  for (const int32_t still : {2, 4}) {
    for (int d = 0; d < kDim; ++d) {
      EXPECT_EQ(state.items[still * kDim + d], before.items[still * kDim + d]);
    }
  }
  for (int d = 0; d < kDim; ++d) EXPECT_EQ(state.users[d], before.users[d]);

  // With user_weight 0 users are not learnt at all (no weight decay either).
  HostBpr frozen = before;
  params.user_weight = 0.0f;
  ASSERT_TRUE(ReferenceBprBatch(frozen.tables(), batch, params).ok());
  EXPECT_EQ(frozen.users, before.users);
  EXPECT_EQ(frozen.user_acc, before.user_acc);
  EXPECT_NE(frozen.items, before.items);

  // Context rows are validated like the other rows.
  const std::vector<int32_t> bad_context = {2, 8, 4};
  batch.context = bad_context;
  EXPECT_EQ(ReferenceBprBatch(frozen.tables(), batch, params).code(),
            absl::StatusCode::kInvalidArgument);
}

// A seeded fold-in problem: `num_users` users with 1..max_items distinct items each.
struct IalsProblem {
  IalsProblem(int64_t num_users, int64_t num_items, int dim, int batch_users, int max_items,
              uint64_t seed)
      : dim(dim), num_users(num_users), num_items(num_items) {
    Rng rng(seed);
    users = Uniform(static_cast<size_t>(num_users * dim), -0.3f, 0.3f, rng);
    items = Uniform(static_cast<size_t>(num_items * dim), -0.3f, 0.3f, rng);
    offsets.push_back(0);
    std::vector<int32_t> all_items(static_cast<size_t>(num_items));
    std::iota(all_items.begin(), all_items.end(), 0);
    for (int b = 0; b < batch_users; ++b) {
      batch_rows.push_back(static_cast<int32_t>((b * 7 + 3) % num_users));
      const int n = 1 + static_cast<int>(rng.Below(static_cast<uint32_t>(max_items)));
      for (int j = 0; j < n; ++j) {  // a partial shuffle: n distinct items
        std::swap(all_items[j], all_items[j + rng.Below(static_cast<uint32_t>(num_items - j))]);
        item_rows.push_back(all_items[j]);
        confidences.push_back(1.0f + 4.0f * rng.UniformFloat());
      }
      offsets.push_back(static_cast<int64_t>(item_rows.size()));
    }
  }
  IalsBatch batch() const { return IalsBatch{batch_rows, offsets, item_rows, confidences}; }
  int dim;
  int64_t num_users, num_items;
  std::vector<float> users, items;
  std::vector<int32_t> batch_rows;
  std::vector<int64_t> offsets;
  std::vector<int32_t> item_rows;
  std::vector<float> confidences;
};

TEST(CudaReferenceIalsTest, GramianIsTheSumOfOuterProducts) {
  const std::vector<float> table = {1, 2, 3, -1, 0.5f, 4};  // 2 rows of width 3
  const std::vector<float> g = ReferenceGramian(table.data(), 2, 3);
  const std::vector<float> expected = {2, 1.5f, -1, 1.5f, 4.25f, 8, -1, 8, 25};
  EXPECT_EQ(g, expected);
}

TEST(CudaReferenceIalsTest, FoldInSolvesTheNormalEquations) {
  for (const int dim : {4, 32, kMaxIalsDim}) {
    IalsProblem problem(40, 300, dim, 6, 25, 10 + dim);
    const std::vector<float> before = problem.users;
    const std::vector<float> gram = ReferenceGramian(problem.items.data(), problem.num_items, dim);
    const IalsParams params{0.5f, 0.3f, 0.2f};
    absl::StatusOr<int64_t> failed =
        ReferenceIalsFoldIn(problem.users.data(), problem.num_users, problem.items.data(),
                            problem.num_items, dim, gram, problem.batch(), params);
    ASSERT_TRUE(failed.ok()) << failed.status();
    EXPECT_EQ(*failed, 0);
    // Residual of (alpha0 G + sum (c - alpha0) q q^T + lambda I) p - (sum c q + prior p_old),
    // assembled independently in double.
    for (size_t b = 0; b < problem.batch_rows.size(); ++b) {
      const int64_t row = problem.batch_rows[b];
      const float* p = problem.users.data() + row * dim;
      const float* p_old = before.data() + row * dim;
      std::vector<double> residual(static_cast<size_t>(dim)), rhs(static_cast<size_t>(dim));
      for (int r = 0; r < dim; ++r) {
        double ap = params.lambda * p[r];
        for (int s = 0; s < dim; ++s) ap += params.alpha0 * gram[r * dim + s] * p[s];
        residual[r] = ap;
        rhs[r] = params.prior * p_old[r];
      }
      for (int64_t j = problem.offsets[b]; j < problem.offsets[b + 1]; ++j) {
        const float* q = problem.items.data() + problem.item_rows[j] * dim;
        double qp = 0;
        for (int s = 0; s < dim; ++s) qp += static_cast<double>(q[s]) * p[s];
        const double c = problem.confidences[j];
        for (int r = 0; r < dim; ++r) {
          residual[r] += (c - params.alpha0) * q[r] * qp;
          rhs[r] += c * q[r];
        }
      }
      double res_norm = 0, rhs_norm = 0;
      for (int r = 0; r < dim; ++r) {
        res_norm += (residual[r] - rhs[r]) * (residual[r] - rhs[r]);
        rhs_norm += rhs[r] * rhs[r];
      }
      EXPECT_LT(std::sqrt(res_norm), 1e-4 * std::sqrt(rhs_norm)) << "dim " << dim << " user " << b;
    }
    // Users outside the batch are unchanged.
    EXPECT_EQ(std::vector<float>(problem.users.begin(), problem.users.begin() + dim),
              std::vector<float>(before.begin(), before.begin() + dim));
  }
}

TEST(CudaReferenceIalsTest, NonPositiveDefiniteSystemsFailAndLeaveTheRow) {
  // Two items; the user "observed" item 0 three times with confidence 0 under alpha0 = 10:
  // A = -20 q0 q0^T + 10 q1 q1^T + lambda I is indefinite.
  const int dim = 2;
  std::vector<float> items = {1.0f, 0.0f, 0.0f, 1.0f};
  std::vector<float> users = {0.25f, -0.5f};
  const std::vector<float> gram = ReferenceGramian(items.data(), 2, dim);
  const std::vector<int32_t> rows = {0};
  const std::vector<int64_t> offsets = {0, 3};
  const std::vector<int32_t> observed = {0, 0, 0};
  const std::vector<float> confidences = {0.0f, 0.0f, 0.0f};
  absl::StatusOr<int64_t> failed = ReferenceIalsFoldIn(
      users.data(), 1, items.data(), 2, dim, gram, IalsBatch{rows, offsets, observed, confidences},
      IalsParams{10.0f, 1e-3f, 0.0f});
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(*failed, 1);
  EXPECT_EQ(users, (std::vector<float>{0.25f, -0.5f}));
}

TEST(CudaReferenceIalsTest, InvalidBatchesAreRejected) {
  IalsProblem problem(10, 50, 4, 3, 5, 7);
  const std::vector<float> gram(16, 0.0f);
  const auto run = [&](const IalsBatch& batch, const IalsParams& params, int dim = 4) {
    return ReferenceIalsFoldIn(problem.users.data(), problem.num_users, problem.items.data(),
                               problem.num_items, dim, gram, batch, params)
        .status()
        .code();
  };
  IalsBatch batch = problem.batch();
  EXPECT_EQ(run(batch, IalsParams{}), absl::StatusCode::kOk);
  EXPECT_EQ(run(batch, IalsParams{1.0f, 0.0f, 0.0f}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(run(batch, IalsParams{}, kMaxIalsDim + 1), absl::StatusCode::kInvalidArgument);
  std::vector<int32_t> repeated = problem.batch_rows;
  repeated[1] = repeated[0];
  batch.users = repeated;
  EXPECT_EQ(run(batch, IalsParams{}), absl::StatusCode::kInvalidArgument);
  batch = problem.batch();
  const std::vector<int64_t> short_offsets(problem.offsets.begin(), problem.offsets.end() - 1);
  batch.offsets = short_offsets;
  EXPECT_EQ(run(batch, IalsParams{}), absl::StatusCode::kInvalidArgument);
  batch = problem.batch();
  std::vector<int32_t> bad_items = problem.item_rows;
  bad_items[0] = 50;
  batch.items = bad_items;
  EXPECT_EQ(run(batch, IalsParams{}), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::kernels
