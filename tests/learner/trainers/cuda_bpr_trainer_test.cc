// The CUDA bpr trainer against the reference trainer (learner/trainers/bpr_trainer.h), both made
// as the learner makes them: the same uploads and micro-batches on padded host tables must leave
// the same host tables, within the bpr kernels' tolerance, and the device top-K must rank the host
// tables' items. Skips without a device.
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "kernels/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reference.h"
#include "learner/trainers/bpr_trainer.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/cuda/uniform_values.h"

namespace freshet::learner {
namespace {

using kernels::BprBatch;
using kernels::BprParams;
using kernels::BprTables;
using kernels::CpuBackend;
using kernels::CudaBackend;
using kernels::ItemMatrixView;
using kernels::ReferenceBprBatch;
using kernels::ScoredItem;
using kernels::TopKQuery;
namespace testing_util = kernels::testing_util;

// Host tables with padded rows (stride > dim), as the learner keeps them.
struct PaddedTables {
  PaddedTables(int64_t users, int64_t items, int dim, int64_t stride, uint64_t seed)
      : dim(dim), stride(stride) {
    Rng rng(seed);
    u = testing_util::Uniform(static_cast<size_t>(users * stride), -0.4f, 0.4f, rng);
    ua = testing_util::Uniform(static_cast<size_t>(users), 0.0f, 0.1f, rng);
    i = testing_util::Uniform(static_cast<size_t>(items * stride), -0.4f, 0.4f, rng);
    ia = testing_util::Uniform(static_cast<size_t>(items), 0.0f, 0.1f, rng);
    b = testing_util::Uniform(static_cast<size_t>(items), -0.2f, 0.2f, rng);
    ba = testing_util::Uniform(static_cast<size_t>(items), 0.0f, 0.1f, rng);
    for (int64_t r = 0; r < users; ++r) {
      std::fill(u.data() + r * stride + dim, u.data() + (r + 1) * stride, 0.0f);
    }
    for (int64_t r = 0; r < items; ++r) {
      std::fill(i.data() + r * stride + dim, i.data() + (r + 1) * stride, 0.0f);
    }
  }
  BprTables view() {
    return BprTables{u.data(),
                     ua.data(),
                     i.data(),
                     ia.data(),
                     b.data(),
                     ba.data(),
                     static_cast<int64_t>(ua.size()),
                     static_cast<int64_t>(ia.size()),
                     dim,
                     stride};
  }
  int dim;
  int64_t stride;
  std::vector<float> u, ua, i, ia, b, ba;
};

void ExpectClose(const std::vector<float>& device, const std::vector<float>& reference,
                 const char* what) {
  ASSERT_EQ(device.size(), reference.size());
  int reported = 0;
  for (size_t k = 0; k < device.size() && reported < 5; ++k) {
    if (!(std::fabs(device[k] - reference[k]) <= 2e-5f + 2e-4f * std::fabs(reference[k]))) {
      ADD_FAILURE() << what << "[" << k << "]: cuda " << device[k] << " reference " << reference[k];
      ++reported;
    }
  }
}

TEST(CudaBprTrainerTest, MirrorsTheReferenceTrainerOnPaddedHostTablesAndServesTheirTopK) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (!backend.ok()) GTEST_SKIP() << "no CUDA device: " << backend.status().message();
  constexpr int kDim = 20, kNegatives = 4, kWindow = 3;
  constexpr int64_t kStride = 32, kUsers = 200, kItems = 300;
  PaddedTables on_cuda(kUsers, kItems, kDim, kStride, 1);
  PaddedTables on_reference = on_cuda;
  BprTrainerOptions options;
  options.dim = kDim;
  absl::StatusOr<std::unique_ptr<BprTrainer>> cuda = NewBprTrainer(**backend, options);
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  std::unique_ptr<BprTrainer> reference = NewReferenceBprTrainer(kDim);
  std::vector<int32_t> all_users(kUsers), all_items(kItems);
  std::iota(all_users.begin(), all_users.end(), 0);
  std::iota(all_items.begin(), all_items.end(), 0);
  ASSERT_TRUE((*cuda)->Upload(on_cuda.view(), all_users, all_items).ok());
  ASSERT_TRUE(reference->Upload(on_reference.view(), all_users, all_items).ok());

  Rng rng(2);
  for (int step = 0; step < 5; ++step) {
    std::vector<int32_t> users, positives, negatives, context;
    std::vector<float> log_q, weights, context_weights;
    for (int e = 0; e < 256; ++e) {
      users.push_back(static_cast<int32_t>(rng.Below(kUsers)));
      positives.push_back(static_cast<int32_t>(rng.Below(kItems)));
      for (int n = 0; n < kNegatives; ++n)
        negatives.push_back(static_cast<int32_t>(rng.Below(kItems)));
      for (int c = 0; c <= kNegatives; ++c) log_q.push_back(-5.0f + rng.UniformFloat());
      weights.push_back(1.0f);
      for (int k = 0; k < kWindow; ++k) {
        context.push_back(static_cast<int32_t>(rng.Below(kItems)));
        context_weights.push_back(0.2f);
      }
    }
    const BprBatch batch{users,      positives, negatives,       log_q,  weights,
                         kNegatives, context,   context_weights, kWindow};
    const BprParams params{0.05f, 1e-4f, 1e-6f, 0.8f};
    ASSERT_TRUE((*cuda)->Step(batch, params, on_cuda.view()).ok());
    ASSERT_TRUE(reference->Step(batch, params, on_reference.view()).ok());
    // The reference's host tables are exact; the device's within float reordering. Copy the
    // reference's values over, so the next step compares one batch's arithmetic, not drift.
    ExpectClose(on_cuda.u, on_reference.u, "users");
    ExpectClose(on_cuda.ua, on_reference.ua, "user_acc");
    ExpectClose(on_cuda.i, on_reference.i, "items");
    ExpectClose(on_cuda.ia, on_reference.ia, "item_acc");
    ExpectClose(on_cuda.b, on_reference.b, "bias");
    ExpectClose(on_cuda.ba, on_reference.ba, "bias_acc");
    on_cuda = on_reference;
    ASSERT_TRUE((*cuda)->Upload(on_cuda.view(), all_users, all_items).ok());
  }
  // Padding is never written.
  for (int64_t r = 0; r < kItems; ++r) {
    for (int64_t c = kDim; c < kStride; ++c) ASSERT_EQ(on_cuda.i[r * kStride + c], 0.0f);
  }

  // The device's top-K over its (uploaded) items equals the CPU's over the host tables.
  std::vector<float> query(kStride, 0.0f);
  for (int d = 0; d < kDim; ++d) query[d] = 0.1f * static_cast<float>(d % 5) - 0.2f;
  const std::vector<int32_t> exclude = {3, 7, 11};
  const TopKQuery q{query.data(), exclude};
  std::vector<std::vector<ScoredItem>> device_out(1), host_out(1);
  ASSERT_TRUE(
      (*cuda)->TopK(kItems, absl::MakeConstSpan(&q, 1), 20, absl::MakeSpan(device_out)).ok());
  const CpuBackend cpu;
  const ItemMatrixView view{on_cuda.i.data(), on_cuda.b.data(), kItems, kDim, kStride};
  ASSERT_TRUE(cpu.TopK(view, absl::MakeConstSpan(&q, 1), 20, absl::MakeSpan(host_out)).ok());
  testing_util::ExpectSameTopK(
      device_out[0], host_out[0], exclude, 2e-4f,
      [&](int32_t item) {
        float s = on_cuda.b[item];
        for (int d = 0; d < kDim; ++d) s += query[d] * on_cuda.i[item * kStride + d];
        return s;
      },
      "trainer top-K");
}

TEST(CudaBprTrainerTest, TwoDevicesSumTheirUpdatesOfTheItemModel) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (!backend.ok()) GTEST_SKIP() << "no CUDA device: " << backend.status().message();
  if (!CudaBackend::Create(1).ok()) GTEST_SKIP() << "one CUDA device: the NCCL path needs two";
  constexpr int kDim = 16, kNegatives = 2, kEvents = 64;
  constexpr int64_t kUsers = 64, kItems = 96;
  const PaddedTables base(kUsers, kItems, kDim, kDim, 3);
  BprTrainerOptions options;
  options.dim = kDim;
  options.devices = 2;
  absl::StatusOr<std::unique_ptr<BprTrainer>> pair = NewBprTrainer(**backend, options);
  ASSERT_TRUE(pair.ok()) << pair.status();
  std::vector<int32_t> all_users(kUsers), all_items(kItems);
  std::iota(all_users.begin(), all_users.end(), 0);
  std::iota(all_items.begin(), all_items.end(), 0);
  PaddedTables on_pair = base;
  ASSERT_TRUE((*pair)->Upload(on_pair.view(), all_users, all_items).ok());

  // Event e is user e: even users learn on device 0, odd users on device 1.
  Rng rng(4);
  std::vector<int32_t> users, positives, negatives;
  std::vector<float> log_q, weights;
  for (int e = 0; e < kEvents; ++e) {
    users.push_back(e);
    positives.push_back(static_cast<int32_t>(rng.Below(kItems)));
    for (int n = 0; n < kNegatives; ++n) {
      negatives.push_back(static_cast<int32_t>(rng.Below(kItems)));
    }
    for (int c = 0; c <= kNegatives; ++c) log_q.push_back(-4.0f);
    weights.push_back(1.0f);
  }
  const BprParams params{0.05f, 0.0f, 1e-6f, 1.0f};
  const BprBatch batch{users, positives, negatives, log_q, weights, kNegatives, {}, {}, 0};
  ASSERT_TRUE((*pair)->Step(batch, params, on_pair.view()).ok());

  // Expected: the base plus each half's update on the item side (sync every batch, summed);
  // each user as its own half left it.
  std::vector<PaddedTables> halves;
  for (int parity = 0; parity < 2; ++parity) {
    std::vector<int32_t> u, p, n;
    std::vector<float> q, w;
    for (int e = parity; e < kEvents; e += 2) {
      u.push_back(users[e]);
      p.push_back(positives[e]);
      n.insert(n.end(), negatives.begin() + e * kNegatives,
               negatives.begin() + (e + 1) * kNegatives);
      q.insert(q.end(), log_q.begin() + e * (kNegatives + 1),
               log_q.begin() + (e + 1) * (kNegatives + 1));
      w.push_back(1.0f);
    }
    PaddedTables half = base;
    ASSERT_TRUE(
        ReferenceBprBatch(half.view(), BprBatch{u, p, n, q, w, kNegatives, {}, {}, 0}, params)
            .ok());
    halves.push_back(half);
  }
  std::vector<float> expected_items = base.i;
  for (size_t k = 0; k < expected_items.size(); ++k) {
    expected_items[k] += (halves[0].i[k] - base.i[k]) + (halves[1].i[k] - base.i[k]);
  }
  ExpectClose(on_pair.i, expected_items, "items");
  std::vector<float> expected_users = base.u;
  for (int64_t r = 0; r < kUsers; ++r) {
    const PaddedTables& owner = halves[static_cast<size_t>(r % 2)];
    std::copy_n(owner.u.data() + r * kDim, kDim, expected_users.data() + r * kDim);
  }
  ExpectClose(on_pair.u, expected_users, "users");
}

}  // namespace
}  // namespace freshet::learner
