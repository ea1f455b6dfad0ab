#include "kernels/cpu_backend.h"

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/topk.h"
#include "tests/kernels/test_util.h"

namespace freshet::kernels {
namespace {

using ::testing::HasSubstr;
using testing_util::BruteForceTopK;
using testing_util::OwnedItems;
using testing_util::RandomItems;
using testing_util::RandomVector;

class CpuBackendTest : public ::testing::Test {
 protected:
  CpuBackendTest()
      : items_(RandomItems(500, 16, 16, true, 1)),
        a_(RandomVector(16, 2)),
        b_(RandomVector(16, 3)),
        queries_{{a_.data(), exclude_}, {b_.data(), {}}},
        results_(2) {}

  absl::Status TopK(const ItemMatrixView& items, int k) const {
    return backend_.TopK(items, queries_, k, absl::MakeSpan(results_));
  }

  CpuBackend backend_;
  OwnedItems items_;
  std::vector<float> a_;
  std::vector<float> b_;
  std::vector<int32_t> exclude_ = {4, 8, 15, 16, 23, 42};
  std::vector<TopKQuery> queries_;
  mutable std::vector<std::vector<ScoredItem>> results_;
};

TEST_F(CpuBackendTest, NameIsCpu) { EXPECT_EQ(backend_.Name(), "cpu"); }

TEST_F(CpuBackendTest, TopKMatchesBruteForceAndClearsResults) {
  results_[0] = {{1, 1.0f}};
  results_[1] = {{2, 2.0f}, {3, 3.0f}};
  ASSERT_TRUE(TopK(items_.view, 10).ok());
  EXPECT_EQ(results_[0], BruteForceTopK(items_.view, a_.data(), exclude_, 10));
  EXPECT_EQ(results_[1], BruteForceTopK(items_.view, b_.data(), {}, 10));
}

TEST_F(CpuBackendTest, EmptyCatalogIsNotAnError) {
  results_[0] = {{1, 1.0f}};
  ASSERT_TRUE(TopK(ItemMatrixView{nullptr, nullptr, 0, 16, 16}, 10).ok());
  EXPECT_TRUE(results_[0].empty());
  EXPECT_TRUE(results_[1].empty());
}

void ExpectInvalid(const absl::Status& status, const char* fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
}

TEST_F(CpuBackendTest, RejectsBadArguments) {
  ExpectInvalid(TopK(items_.view, 0), "k must be >= 1");
  ExpectInvalid(TopK(items_.view, -3), "k must be >= 1");

  ItemMatrixView bad = items_.view;
  bad.dim = 0;
  bad.stride = 0;
  ExpectInvalid(TopK(bad, 5), "dim must be >= 1");
  bad = items_.view;
  bad.dim = -1;
  ExpectInvalid(TopK(bad, 5), "dim must be >= 1");
  bad = items_.view;
  bad.stride = 15;
  ExpectInvalid(TopK(bad, 5), "stride 15 is smaller than dim 16");
  bad = items_.view;
  bad.rows = -1;
  ExpectInvalid(TopK(bad, 5), "rows must be in");
  bad = items_.view;
  bad.rows = int64_t{std::numeric_limits<int32_t>::max()} + 1;
  ExpectInvalid(TopK(bad, 5), "rows must be in");
  bad = items_.view;
  bad.vectors = nullptr;
  ExpectInvalid(TopK(bad, 5), "vectors are null");

  std::vector<std::vector<ScoredItem>> one_slot(1);
  ExpectInvalid(backend_.TopK(items_.view, queries_, 5, absl::MakeSpan(one_slot)),
                "2 queries but 1 result slots");

  std::vector<TopKQuery> queries = queries_;
  queries[1].vector = nullptr;
  ExpectInvalid(backend_.TopK(items_.view, queries, 5, absl::MakeSpan(results_)),
                "query 1 has a null vector");

  const std::vector<int32_t> unsorted = {3, 1};
  queries = queries_;
  queries[1].exclude = unsorted;
  ExpectInvalid(backend_.TopK(items_.view, queries, 5, absl::MakeSpan(results_)),
                "query 1 exclude list is not sorted");
}

TEST_F(CpuBackendTest, TopKFromScores) {
  const std::vector<float> scores = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f};
  const std::vector<int32_t> exclude = {4};
  std::vector<ScoredItem> result = {{9, 9.0f}};
  ASSERT_TRUE(backend_.TopKFromScores(scores.data(), 5, exclude, 3, &result).ok());
  EXPECT_EQ(result, (std::vector<ScoredItem>{{1, 2.0f}, {3, 2.0f}, {0, 0.5f}}));
  ASSERT_TRUE(backend_.TopKFromScores(nullptr, 0, {}, 3, &result).ok());
  EXPECT_TRUE(result.empty());
}

TEST_F(CpuBackendTest, TopKFromScoresRejectsBadArguments) {
  const std::vector<float> scores = {1, 2, 3};
  std::vector<ScoredItem> result;
  ExpectInvalid(backend_.TopKFromScores(scores.data(), 3, {}, 0, &result), "k must be >= 1");
  ExpectInvalid(backend_.TopKFromScores(scores.data(), -1, {}, 1, &result),
                "score count must be in");
  ExpectInvalid(backend_.TopKFromScores(nullptr, 3, {}, 1, &result), "scores are null");
  ExpectInvalid(backend_.TopKFromScores(scores.data(), 3, {}, 1, nullptr), "result is null");
  const std::vector<int32_t> unsorted = {2, 0};
  ExpectInvalid(backend_.TopKFromScores(scores.data(), 3, unsorted, 1, &result),
                "exclude list is not sorted");
}

TEST_F(CpuBackendTest, ConcurrentCallsAgree) {
  ASSERT_TRUE(TopK(items_.view, 7).ok());
  const std::vector<std::vector<ScoredItem>> expected = results_;
  std::vector<std::vector<std::vector<ScoredItem>>> per_thread(4);
  std::vector<absl::Status> statuses(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      per_thread[t].resize(2);
      for (int i = 0; i < 50 && statuses[t].ok(); ++i) {
        statuses[t] = backend_.TopK(items_.view, queries_, 7, absl::MakeSpan(per_thread[t]));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_TRUE(statuses[t].ok()) << statuses[t];
    EXPECT_EQ(per_thread[t], expected) << t;
  }
}

}  // namespace
}  // namespace freshet::kernels
