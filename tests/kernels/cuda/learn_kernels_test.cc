// The bpr and ials learning kernels against their CPU references (reference.h) on the same seeded
// inputs (the ggml test-backend-ops pattern). The device sums in another order (atomics, block
// reductions, float Cholesky), so values are compared within stated tolerances.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "kernels/cuda/bpr_batch.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/ials_fold_in.h"
#include "kernels/cuda/learn_batch.h"
#include "kernels/cuda/reference.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/cuda/uniform_values.h"

namespace freshet::kernels {
namespace {

using testing_util::Uniform;

std::unique_ptr<DeviceTable> Table(const CudaContext& ctx, const std::vector<float>& host,
                                   int dim) {
  absl::StatusOr<std::unique_ptr<DeviceTable>> table = DeviceTable::Create(&ctx, dim);
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return nullptr;
  EXPECT_TRUE((*table)->Resize(static_cast<int64_t>(host.size()) / dim).ok());
  EXPECT_TRUE((*table)->Upload(0, host).ok());
  return std::move(*table);
}

std::vector<float> Download(const DeviceTable& table) {
  std::vector<float> out;
  EXPECT_TRUE(table.Download(0, table.rows(), &out).ok());
  return out;
}

// |a - b| <= abs + rel * |b| element-wise, reporting the first few mismatches.
void ExpectClose(const std::vector<float>& device, const std::vector<float>& reference, float abs,
                 float rel, const char* what) {
  ASSERT_EQ(device.size(), reference.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < device.size() && reported < 5; ++i) {
    const float limit = abs + rel * std::fabs(reference[i]);
    if (!(std::fabs(device[i] - reference[i]) <= limit)) {
      ADD_FAILURE() << what << "[" << i << "]: device " << device[i] << " reference "
                    << reference[i];
      ++reported;
    }
  }
}

TEST(CudaBprBatchTest, MatchesTheReferenceWithRepeatedRows) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  // Without a context window (p = users[u]), and with one of three slots (one often empty) and
  // a user weight below one, as the learner sends them.
  for (const int window : {0, 3})
    for (const int dim : {16, 64, 100}) {
      SCOPED_TRACE(::testing::Message() << "dim " << dim << ", window " << window);
      constexpr int64_t kUsers = 300, kItems = 400, kEvents = 512;
      constexpr int kNegatives = 4;
      Rng rng(40 + dim);
      std::vector<float> users = Uniform(kUsers * dim, -0.5f, 0.5f, rng);
      std::vector<float> user_acc = Uniform(kUsers, 0.0f, 0.2f, rng);
      std::vector<float> items = Uniform(kItems * dim, -0.5f, 0.5f, rng);
      std::vector<float> item_acc = Uniform(kItems, 0.0f, 0.2f, rng);
      std::vector<float> bias = Uniform(kItems, -0.3f, 0.3f, rng);
      std::vector<float> bias_acc = Uniform(kItems, 0.0f, 0.2f, rng);
      // Users from a small range and popular items: many repeated rows in one batch.
      std::vector<int32_t> batch_users, positives, negatives;
      std::vector<float> log_q, weights;
      for (int64_t e = 0; e < kEvents; ++e) {
        batch_users.push_back(static_cast<int32_t>(rng.Below(60)));
        positives.push_back(static_cast<int32_t>(rng.Below(kItems)));
        for (int n = 0; n < kNegatives; ++n) {
          const bool empty = rng.Below(10) == 0;
          negatives.push_back(empty ? -1 : static_cast<int32_t>(rng.Below(50)));
        }
        for (int c = 0; c <= kNegatives; ++c) log_q.push_back(rng.UniformFloat() * 2.0f - 1.0f);
        weights.push_back(0.5f + rng.UniformFloat());
      }
      std::vector<int32_t> context;
      std::vector<float> context_weights;
      for (int64_t e = 0; e < kEvents * window; ++e) {
        const bool empty = rng.Below(4) == 0;
        context.push_back(empty ? -1 : static_cast<int32_t>(rng.Below(kItems)));
        context_weights.push_back(empty ? 0.0f : 0.1f + 0.3f * rng.UniformFloat());
      }
      const BprBatch batch{batch_users, positives, negatives,       log_q, weights,
                           kNegatives,  context,   context_weights, window};
      const BprParams params{0.05f, 0.01f, 1e-6f, window > 0 ? 0.7f : 1.0f};

      std::unique_ptr<DeviceTable> d_users = Table(*ctx, users, dim);
      std::unique_ptr<DeviceTable> d_user_acc = Table(*ctx, user_acc, 1);
      std::unique_ptr<DeviceTable> d_items = Table(*ctx, items, dim);
      std::unique_ptr<DeviceTable> d_item_acc = Table(*ctx, item_acc, 1);
      std::unique_ptr<DeviceTable> d_bias = Table(*ctx, bias, 1);
      std::unique_ptr<DeviceTable> d_bias_acc = Table(*ctx, bias_acc, 1);
      ASSERT_TRUE(d_users && d_user_acc && d_items && d_item_acc && d_bias && d_bias_acc);
      const BprDeviceModel model{d_users.get(),    d_user_acc.get(), d_items.get(),
                                 d_item_acc.get(), d_bias.get(),     d_bias_acc.get()};
      const absl::Status run = RunBprBatch(*ctx, model, batch, params);
      ASSERT_TRUE(run.ok()) << run;

      const BprTables host{users.data(), user_acc.data(),
                           items.data(), item_acc.data(),
                           bias.data(),  bias_acc.data(),
                           kUsers,       kItems,
                           dim,          0};
      ASSERT_TRUE(ReferenceBprBatch(host, batch, params).ok());
      // Gradients are sums of up to ~60 events of O(1) terms in a different order: a few float
      // ulps of the larger terms.
      ExpectClose(Download(*d_users), users, 2e-5f, 2e-4f, "users");
      ExpectClose(Download(*d_user_acc), user_acc, 2e-5f, 2e-4f, "user_acc");
      ExpectClose(Download(*d_items), items, 2e-5f, 2e-4f, "items");
      ExpectClose(Download(*d_item_acc), item_acc, 2e-5f, 2e-4f, "item_acc");
      ExpectClose(Download(*d_bias), bias, 2e-5f, 2e-4f, "bias");
      ExpectClose(Download(*d_bias_acc), bias_acc, 2e-5f, 2e-4f, "bias_acc");

      // The dirty rows are exactly the batch's distinct users and candidate items.
      const std::set<int32_t> expected_users(batch_users.begin(), batch_users.end());
      std::set<int32_t> expected_items(positives.begin(), positives.end());
      for (const int32_t j : negatives) {
        if (j >= 0) expected_items.insert(j);
      }
      absl::StatusOr<DirtyRows> dirty_users = d_users->TakeDirtyRows();
      absl::StatusOr<DirtyRows> dirty_items = d_items->TakeDirtyRows();
      ASSERT_TRUE(dirty_users.ok() && dirty_items.ok());
      EXPECT_EQ(dirty_users->rows,
                std::vector<int32_t>(expected_users.begin(), expected_users.end()));
      EXPECT_EQ(dirty_items->rows,
                std::vector<int32_t>(expected_items.begin(), expected_items.end()));
    }
}

TEST(CudaBprBatchTest, InvalidBatchesAreRejectedBeforeAnyWrite) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  const std::vector<float> zeros(8 * 4, 0.0f), ones(8, 1.0f);
  std::unique_ptr<DeviceTable> users = Table(*ctx, zeros, 4), items = Table(*ctx, zeros, 4);
  std::unique_ptr<DeviceTable> a = Table(*ctx, ones, 1), b = Table(*ctx, ones, 1);
  std::unique_ptr<DeviceTable> c = Table(*ctx, ones, 1), d = Table(*ctx, ones, 1);
  const BprDeviceModel model{users.get(), a.get(), items.get(), b.get(), c.get(), d.get()};
  const std::vector<int32_t> u = {0}, pos = {8}, neg = {};
  const std::vector<float> log_q = {0.0f};
  EXPECT_EQ(
      RunBprBatch(*ctx, model, BprBatch{u, pos, neg, log_q, {}, 0, {}, {}, 0}, BprParams{}).code(),
      absl::StatusCode::kInvalidArgument);
  const BprDeviceModel mismatched{users.get(), a.get(), items.get(), b.get(), c.get(), users.get()};
  const std::vector<int32_t> ok_pos = {1};
  EXPECT_EQ(
      RunBprBatch(*ctx, mismatched, BprBatch{u, ok_pos, neg, log_q, {}, 0, {}, {}, 0}, BprParams{})
          .code(),
      absl::StatusCode::kInvalidArgument);
  ExpectClose(Download(*users), zeros, 0.0f, 0.0f, "users");
  EXPECT_TRUE(
      RunBprBatch(*ctx, model, BprBatch{u, ok_pos, neg, log_q, {}, 0, {}, {}, 0}, BprParams{})
          .ok());
  EXPECT_TRUE(ctx->Synchronize().ok());
}

TEST(CudaIalsFoldInTest, GramianAndSolutionsMatchTheReference) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  for (const int dim : {8, 64, kMaxIalsDim}) {
    constexpr int64_t kUsers = 200, kItems = 500;
    Rng rng(60 + dim);
    std::vector<float> users = Uniform(kUsers * dim, -0.3f, 0.3f, rng);
    const std::vector<float> items = Uniform(kItems * dim, -0.3f, 0.3f, rng);
    std::vector<int32_t> rows, observed;
    std::vector<int64_t> offsets = {0};
    std::vector<float> confidences;
    std::vector<int32_t> pool(kItems);
    std::iota(pool.begin(), pool.end(), 0);
    for (int b = 0; b < 64; ++b) {
      rows.push_back(b * 3);
      const int n = 1 + static_cast<int>(rng.Below(40));
      for (int j = 0; j < n; ++j) {  // n distinct items
        std::swap(pool[j], pool[j + rng.Below(static_cast<uint32_t>(kItems - j))]);
        observed.push_back(pool[j]);
        confidences.push_back(1.0f + 4.0f * rng.UniformFloat());
      }
      offsets.push_back(static_cast<int64_t>(observed.size()));
    }
    const IalsBatch batch{rows, offsets, observed, confidences};
    const IalsParams params{0.5f, 0.5f, 0.1f};

    std::unique_ptr<DeviceTable> d_users = Table(*ctx, users, dim);
    std::unique_ptr<DeviceTable> d_items = Table(*ctx, items, dim);
    ASSERT_TRUE(d_users && d_items);
    DeviceBuffer<float> gram;
    ASSERT_TRUE(ComputeGramian(*ctx, *d_items, &gram).ok());
    std::vector<float> gram_host(static_cast<size_t>(dim) * dim);
    ASSERT_TRUE(ctx->CopyToHost(gram_host.data(), gram.data(), gram.size()).ok());
    ASSERT_TRUE(ctx->Synchronize().ok());
    const std::vector<float> gram_reference = ReferenceGramian(items.data(), kItems, dim);
    // Sums of 500 products of magnitude <= 0.09 in float: well within 1e-4 absolute.
    ExpectClose(gram_host, gram_reference, 1e-4f, 1e-5f, "gram");

    // Both solve against the same Gramian (the reference's, uploaded) so that only the solves
    // differ: float Cholesky on a system with condition number below ~100 vs double.
    ASSERT_TRUE(ctx->CopyToDevice(gram.data(), gram_reference.data(), gram.size()).ok());
    absl::StatusOr<int64_t> failed =
        RunIalsFoldIn(*ctx, d_users.get(), *d_items, gram, batch, params);
    ASSERT_TRUE(failed.ok()) << failed.status();
    EXPECT_EQ(*failed, 0);
    absl::StatusOr<int64_t> reference_failed = ReferenceIalsFoldIn(
        users.data(), kUsers, items.data(), kItems, dim, gram_reference, batch, params);
    ASSERT_TRUE(reference_failed.ok());
    EXPECT_EQ(*reference_failed, 0);
    ExpectClose(Download(*d_users), users, 1e-4f, 1e-3f, "users");
    absl::StatusOr<DirtyRows> dirty = d_users->TakeDirtyRows();
    ASSERT_TRUE(dirty.ok());
    EXPECT_EQ(dirty->rows, rows);  // rows are ascending already
  }
}

TEST(CudaIalsFoldInTest, NonPositiveDefiniteSystemsAreCountedAndLeaveTheRow) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  const std::vector<float> items = {1.0f, 0.0f, 0.0f, 1.0f};
  const std::vector<float> users = {0.25f, -0.5f, 0.75f, 1.0f};
  std::unique_ptr<DeviceTable> d_users = Table(*ctx, users, 2);
  std::unique_ptr<DeviceTable> d_items = Table(*ctx, items, 2);
  ASSERT_TRUE(d_users && d_items);
  DeviceBuffer<float> gram;
  ASSERT_TRUE(ComputeGramian(*ctx, *d_items, &gram).ok());
  // User 0: item 0 three times at confidence 0 under alpha0 = 10 (indefinite); user 1: fine.
  const std::vector<int32_t> rows = {0, 1};
  const std::vector<int64_t> offsets = {0, 3, 4};
  const std::vector<int32_t> observed = {0, 0, 0, 1};
  const std::vector<float> confidences = {0.0f, 0.0f, 0.0f, 20.0f};
  absl::StatusOr<int64_t> failed = RunIalsFoldIn(*ctx, d_users.get(), *d_items, gram,
                                                 IalsBatch{rows, offsets, observed, confidences},
                                                 IalsParams{10.0f, 1e-3f, 0.0f});
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(*failed, 1);
  const std::vector<float> after = Download(*d_users);
  EXPECT_EQ(after[0], 0.25f);
  EXPECT_EQ(after[1], -0.5f);
  // User 1: A = 10 I + 10 q1 q1^T + 1e-3 I, b = 20 q1 -> p = (0, 20 / 20.001).
  EXPECT_NEAR(after[2], 0.0f, 1e-6f);
  EXPECT_NEAR(after[3], 20.0f / 20.001f, 1e-5f);
}

}  // namespace
}  // namespace freshet::kernels
