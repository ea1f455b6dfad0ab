#include "kernels/topk.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/internal/inner_product_top_k.h"
#include "tests/kernels/test_util.h"

namespace freshet::kernels {
namespace internal {
// Names the parameter in gtest output.
void PrintTo(SimdLevel level, std::ostream* os) { *os << SimdLevelName(level); }
}  // namespace internal

namespace {

using internal::SimdLevel;
using testing_util::BruteForceTopK;
using testing_util::OwnedItems;
using testing_util::RandomExclude;
using testing_util::RandomItems;
using testing_util::RandomVector;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(MulAddTest, FusedWhenTheTargetHasFma) {
  // a * a = 1 + 2^-11 + 2^-24 is not a float: rounding it first loses the 2^-24.
  const float a = 1.0f + std::ldexp(1.0f, -12);
  const float c = -(1.0f + std::ldexp(1.0f, -11));
#ifdef FP_FAST_FMAF
  EXPECT_EQ(MulAdd(a, a, c), std::ldexp(1.0f, -24));
#else
  EXPECT_EQ(MulAdd(a, a, c), 0.0f);
#endif
}

TEST(ReferenceScoreTest, ChainsInDimensionOrderThenAddsBias) {
  const std::vector<float> vectors = {1, 2, 3, 99, 4, 5, 6, 99};
  const std::vector<float> bias = {0.5f, -1.0f};
  const float query[] = {1, 10, 100};
  ItemMatrixView items{vectors.data(), nullptr, 2, 3, 4};
  EXPECT_EQ(ReferenceScore(items, query, 0), 321.0f);
  EXPECT_EQ(ReferenceScore(items, query, 1), 654.0f);
  items.bias = bias.data();
  EXPECT_EQ(ReferenceScore(items, query, 0), 321.5f);
  EXPECT_EQ(ReferenceScore(items, query, 1), 653.0f);

  // Order matters in float: 2^24 + 1 - 2^24 is 0 left to right, but 1 right to left.
  const std::vector<float> big = {1.0f, 1.0f, -1.0f};
  const float weights[] = {16777216.0f, 1.0f, 16777216.0f};
  const ItemMatrixView one{big.data(), nullptr, 1, 3, 3};
  EXPECT_EQ(ReferenceScore(one, weights, 0), 0.0f);
}

// Runs every test below on each kernel implementation compiled into this binary.
class TopKTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override {
    if (!internal::SimdLevelCompiled(GetParam())) {
      GTEST_SKIP() << internal::SimdLevelName(GetParam())
                   << " is not compiled in or not supported by this processor";
    }
  }

  std::vector<std::vector<ScoredItem>> Run(const ItemMatrixView& items,
                                           absl::Span<const TopKQuery> queries, int k) {
    std::vector<std::vector<ScoredItem>> results(queries.size());
    internal::InnerProductTopK(GetParam(), items, queries, k, absl::MakeSpan(results));
    return results;
  }

  std::vector<ScoredItem> RunOne(const ItemMatrixView& items, const float* query,
                                 absl::Span<const int32_t> exclude, int k) {
    const TopKQuery q{query, exclude};
    return Run(items, absl::MakeConstSpan(&q, 1), k)[0];
  }
};

// Sizes straddle the 16-item panels, 64-item groups and the packed block (128 rows at dim 64,
// 8192 at dim 1); dims straddle the 16-float transpose tiles.
TEST_P(TopKTest, MatchesBruteForceAcrossShapes) {
  const std::vector<int64_t> row_counts = {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 300, 1000};
  const std::vector<int> dims = {1, 7, 16, 17, 64, 65};
  uint64_t seed = 1;
  for (int dim : dims) {
    for (int64_t rows : row_counts) {
      for (int64_t stride : {static_cast<int64_t>(dim), static_cast<int64_t>(dim) + 3}) {
        for (bool with_bias : {false, true}) {
          const OwnedItems items = RandomItems(rows, dim, stride, with_bias, ++seed);
          // 7 queries: a full group of 6 and a remainder of 1.
          constexpr int kQueries = 7;
          std::vector<std::vector<float>> vectors;
          std::vector<std::vector<int32_t>> excludes;
          std::vector<TopKQuery> queries;
          for (int q = 0; q < kQueries; ++q) {
            vectors.push_back(RandomVector(dim, ++seed));
            excludes.push_back(q % 2 == 0 ? std::vector<int32_t>{}
                                          : RandomExclude(static_cast<int>(rows / 4), 0,
                                                          static_cast<int32_t>(rows), ++seed));
          }
          for (int q = 0; q < kQueries; ++q) queries.push_back({vectors[q].data(), excludes[q]});
          for (int k : {1, 5, 20, 1000}) {
            const auto results = Run(items.view, queries, k);
            for (int q = 0; q < kQueries; ++q) {
              ASSERT_EQ(results[q], BruteForceTopK(items.view, vectors[q].data(), excludes[q], k))
                  << "rows " << rows << " dim " << dim << " stride " << stride << " bias "
                  << with_bias << " k " << k << " query " << q;
            }
          }
        }
      }
    }
  }
}

TEST_P(TopKTest, ManyBlocksAndWideDims) {
  struct Shape {
    int64_t rows;
    int dim;
  };
  // 8193 rows at dim 1 cross the first packed block by one row; 5000 x 64 spans 40 blocks.
  for (const Shape& shape : {Shape{8193, 1}, Shape{5000, 64}, Shape{700, 200}}) {
    const OwnedItems items = RandomItems(shape.rows, shape.dim, shape.dim, true, 99);
    const std::vector<float> query = RandomVector(shape.dim, 100);
    for (int k : {1, 20, 300}) {
      EXPECT_EQ(RunOne(items.view, query.data(), {}, k),
                BruteForceTopK(items.view, query.data(), {}, k))
          << shape.rows << " x " << shape.dim << " k " << k;
    }
  }
}

TEST_P(TopKTest, BatchedEqualsOneQueryAtATimeAndEveryLevel) {
  const OwnedItems items = RandomItems(1500, 64, 64, true, 5);
  constexpr int kQueries = 37;  // six groups of 6 and one of 1
  std::vector<std::vector<float>> vectors;
  std::vector<std::vector<int32_t>> excludes;
  std::vector<TopKQuery> queries;
  for (int q = 0; q < kQueries; ++q) {
    vectors.push_back(RandomVector(64, 1000 + q));
    excludes.push_back(RandomExclude(q * 10, 0, 1500, 2000 + q));
  }
  for (int q = 0; q < kQueries; ++q) queries.push_back({vectors[q].data(), excludes[q]});
  const auto batched = Run(items.view, queries, 20);
  for (int q = 0; q < kQueries; ++q) {
    EXPECT_EQ(batched[q], RunOne(items.view, vectors[q].data(), excludes[q], 20)) << q;
    // Every sub-batch gives the same answer too (a query's group position changes).
    const auto tail = Run(items.view, absl::MakeConstSpan(queries).subspan(q), 20);
    EXPECT_EQ(batched[q], tail[0]) << q;
  }
  // Bit-identical across implementations, not merely close.
  for (SimdLevel other : {SimdLevel::kPortable, SimdLevel::kAvx512}) {
    if (!internal::SimdLevelCompiled(other)) continue;
    std::vector<std::vector<ScoredItem>> results(kQueries);
    internal::InnerProductTopK(other, items.view, queries, 20, absl::MakeSpan(results));
    EXPECT_EQ(results, batched) << internal::SimdLevelName(other);
  }
}

TEST_P(TopKTest, PublicFunctionsUseTheSameKernels) {
  const OwnedItems items = RandomItems(777, 33, 40, true, 8);
  const std::vector<float> a = RandomVector(33, 9);
  const std::vector<float> b = RandomVector(33, 10);
  const std::vector<int32_t> exclude = {3, 5, 700};
  std::vector<ScoredItem> single;
  TopKInnerProduct(items.view, a.data(), exclude, 15, &single);
  EXPECT_EQ(single, RunOne(items.view, a.data(), exclude, 15));
  const std::vector<TopKQuery> queries = {{a.data(), exclude}, {b.data(), {}}};
  std::vector<std::vector<ScoredItem>> batch(2);
  TopKInnerProductBatch(items.view, queries, 15, absl::MakeSpan(batch));
  EXPECT_EQ(batch, Run(items.view, queries, 15));
  EXPECT_EQ(batch[0], single);
}

TEST_P(TopKTest, IdenticalItemsRankByLowerRow) {
  constexpr int64_t kRows = 300;
  constexpr int kDim = 8;
  std::vector<float> vectors(kRows * kDim);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int c = 0; c < kDim; ++c) vectors[r * kDim + c] = 0.25f * static_cast<float>(c - 3);
  }
  const ItemMatrixView items{vectors.data(), nullptr, kRows, kDim, kDim};
  const std::vector<float> query = RandomVector(kDim, 3);
  const std::vector<int32_t> exclude = {0, 2, 64, 65};
  const std::vector<ScoredItem> result = RunOne(items, query.data(), exclude, 10);
  const float score = ReferenceScore(items, query.data(), 0);
  const std::vector<int32_t> expected_rows = {1, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  ASSERT_EQ(result.size(), expected_rows.size());
  for (size_t i = 0; i < result.size(); ++i) {
    EXPECT_EQ(result[i].item, expected_rows[i]);
    EXPECT_EQ(result[i].score, score);
  }
}

TEST_P(TopKTest, QuantisedScoresTieBreakLikeBruteForce) {
  // Small integer coordinates and biases make scores exact and collide constantly.
  constexpr int64_t kRows = 2000;
  constexpr int kDim = 3;
  Rng rng(17);
  std::vector<float> vectors(kRows * kDim);
  std::vector<float> bias(kRows);
  for (float& x : vectors) x = static_cast<float>(static_cast<int>(rng.Below(5)) - 2);
  for (float& b : bias) b = static_cast<float>(rng.Below(3));
  for (bool with_bias : {false, true}) {
    const ItemMatrixView items{vectors.data(), with_bias ? bias.data() : nullptr, kRows, kDim,
                               kDim};
    const float query[] = {1, -1, 2};
    const std::vector<int32_t> exclude = RandomExclude(300, 0, kRows, 18);
    for (int k : {1, 7, 64, 500}) {
      EXPECT_EQ(RunOne(items, query, exclude, k), BruteForceTopK(items, query, exclude, k))
          << "k " << k << " bias " << with_bias;
    }
  }
}

TEST_P(TopKTest, ExcludedRowsAtBlockBoundariesAndDuplicates) {
  const OwnedItems items = RandomItems(400, 64, 64, false, 21);
  const std::vector<float> query = RandomVector(64, 22);
  // Make the boundary rows the best ones, so excluding them visibly changes the answer.
  std::vector<float> vectors = items.vectors;
  const std::vector<int32_t> boundary = {0, 15, 16, 63, 64, 127, 128, 129, 255, 256, 399};
  for (int32_t r : boundary) {
    for (int c = 0; c < 64; ++c) vectors[r * 64 + c] = query[c];
  }
  const ItemMatrixView view{vectors.data(), nullptr, 400, 64, 64};
  std::vector<int32_t> exclude;
  for (int32_t r : boundary) exclude.insert(exclude.end(), {r, r});  // each one twice
  const std::vector<ScoredItem> result = RunOne(view, query.data(), exclude, 20);
  EXPECT_EQ(result, BruteForceTopK(view, query.data(), exclude, 20));
  for (const ScoredItem& s : result) {
    EXPECT_FALSE(std::binary_search(exclude.begin(), exclude.end(), s.item)) << s.item;
  }
  // Without the exclusions those rows fill the top.
  const std::vector<ScoredItem> unexcluded = RunOne(view, query.data(), {}, 11);
  std::vector<int32_t> top_rows;
  for (const ScoredItem& s : unexcluded) top_rows.push_back(s.item);
  std::sort(top_rows.begin(), top_rows.end());
  EXPECT_EQ(top_rows, boundary);
}

TEST_P(TopKTest, ExcludingEverythingReturnsNothing) {
  const OwnedItems items = RandomItems(200, 16, 16, true, 31);
  const std::vector<float> query = RandomVector(16, 32);
  std::vector<int32_t> all(200);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_TRUE(RunOne(items.view, query.data(), all, 5).empty());
  // All but one: the survivor alone, whatever k is.
  all.erase(all.begin() + 137);
  const std::vector<ScoredItem> one = RunOne(items.view, query.data(), all, 5);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].item, 137);
  EXPECT_EQ(one[0].score, ReferenceScore(items.view, query.data(), 137));
}

TEST_P(TopKTest, ExcludeEntriesOutsideTheMatrixAreIgnored) {
  const OwnedItems items = RandomItems(50, 4, 4, false, 41);
  const std::vector<float> query = RandomVector(4, 42);
  const std::vector<int32_t> exclude = {-7, -1, 3, 50, 1000};
  EXPECT_EQ(RunOne(items.view, query.data(), exclude, 60),
            BruteForceTopK(items.view, query.data(), exclude, 60));
  EXPECT_EQ(RunOne(items.view, query.data(), exclude, 60).size(), 49u);
}

TEST_P(TopKTest, KLargerThanCatalogReturnsEverythingSorted) {
  const OwnedItems items = RandomItems(70, 5, 5, true, 51);
  const std::vector<float> query = RandomVector(5, 52);
  const std::vector<ScoredItem> result =
      RunOne(items.view, query.data(), {}, std::numeric_limits<int>::max());
  ASSERT_EQ(result.size(), 70u);
  EXPECT_TRUE(std::is_sorted(result.begin(), result.end(), RanksBefore));
  EXPECT_EQ(result, BruteForceTopK(items.view, query.data(), {}, 70));
}

TEST_P(TopKTest, EmptyCatalogAndEmptyBatch) {
  const ItemMatrixView empty{nullptr, nullptr, 0, 8, 8};
  const std::vector<float> query(8, 1.0f);
  std::vector<std::vector<ScoredItem>> results = {{{3, 1.0f}}};  // cleared by the call
  const TopKQuery q{query.data(), {}};
  internal::InnerProductTopK(GetParam(), empty, absl::MakeConstSpan(&q, 1), 5,
                             absl::MakeSpan(results));
  EXPECT_TRUE(results[0].empty());
  const OwnedItems items = RandomItems(10, 8, 8, false, 61);
  EXPECT_TRUE(Run(items.view, {}, 5).empty());
}

TEST_P(TopKTest, NanScoresAreSkipped) {
  OwnedItems items = RandomItems(300, 16, 16, true, 71);
  // NaN in a vector, in a bias, and a row whose products are inf and -inf. (Finite products that
  // overflow only the running sum give inf, not NaN: the FMA never rounds the product.)
  items.vectors[5 * 16 + 3] = kNaN;
  items.vectors[64 * 16 + 0] = kNaN;
  items.bias[200] = kNaN;
  items.vectors[250 * 16 + 0] = kInf;
  items.vectors[250 * 16 + 1] = 3e38f;
  items.vectors[250 * 16 + 2] = -kInf;
  std::vector<float> query = RandomVector(16, 72);
  query[0] = query[1] = query[2] = 10.0f;
  const std::vector<ScoredItem> all = RunOne(items.view, query.data(), {}, 1000);
  EXPECT_EQ(all, BruteForceTopK(items.view, query.data(), {}, 1000));
  EXPECT_EQ(all.size(), 296u);
  for (const ScoredItem& s : all) {
    EXPECT_FALSE(std::isnan(s.score));
    EXPECT_NE(s.item, 5);
    EXPECT_NE(s.item, 64);
    EXPECT_NE(s.item, 200);
    EXPECT_NE(s.item, 250);
  }
  EXPECT_EQ(RunOne(items.view, query.data(), {}, 20),
            BruteForceTopK(items.view, query.data(), {}, 20));

  // A NaN query scores every item NaN: nothing to return.
  query[9] = kNaN;
  EXPECT_TRUE(RunOne(items.view, query.data(), {}, 20).empty());
}

TEST_P(TopKTest, InfiniteScoresAreOrdinaryScores) {
  OwnedItems items = RandomItems(100, 4, 4, true, 81);
  items.bias[10] = kInf;
  items.bias[90] = kInf;
  items.bias[20] = -kInf;
  items.bias[30] = -kInf;
  const std::vector<float> query = RandomVector(4, 82);
  const std::vector<ScoredItem> top = RunOne(items.view, query.data(), {}, 2);
  EXPECT_EQ(top, (std::vector<ScoredItem>{{10, kInf}, {90, kInf}}));
  const std::vector<ScoredItem> all = RunOne(items.view, query.data(), {}, 100);
  ASSERT_EQ(all.size(), 100u);
  EXPECT_EQ(all[98], (ScoredItem{20, -kInf}));
  EXPECT_EQ(all[99], (ScoredItem{30, -kInf}));
  // -inf items still fill a selection that has nothing better.
  std::vector<int32_t> exclude(100);
  std::iota(exclude.begin(), exclude.end(), 0);
  exclude.erase(exclude.begin() + 30);
  exclude.erase(exclude.begin() + 20);
  EXPECT_EQ(RunOne(items.view, query.data(), exclude, 5),
            (std::vector<ScoredItem>{{20, -kInf}, {30, -kInf}}));
}

INSTANTIATE_TEST_SUITE_P(Levels, TopKTest,
                         ::testing::Values(SimdLevel::kPortable, SimdLevel::kAvx512),
                         [](const ::testing::TestParamInfo<SimdLevel>& info) {
                           return std::string(internal::SimdLevelName(info.param));
                         });

TEST(SelectTopKTest, MatchesBruteForce) {
  uint64_t seed = 500;
  for (int64_t n : {1, 2, 19, 20, 21, 63, 64, 65, 128, 1000, 4097}) {
    Rng rng(++seed);
    std::vector<float> scores(static_cast<size_t>(n));
    for (float& s : scores) s = rng.UniformFloat();
    // Quantised copies tie constantly; a few NaNs and infinities join in.
    std::vector<float> quantised = scores;
    for (float& s : quantised) s = std::floor(s * 8.0f);
    for (std::vector<float>* v : {&scores, &quantised}) {
      if (n > 10) {
        (*v)[3] = kNaN;
        (*v)[n - 1] = kInf;
        (*v)[n / 2] = -kInf;
      }
      const std::vector<int32_t> exclude =
          RandomExclude(static_cast<int>(n / 3), 0, static_cast<int32_t>(n), ++seed);
      for (int k : {1, 10, 64, 5000}) {
        for (const std::vector<int32_t>& ex : {std::vector<int32_t>{}, exclude}) {
          std::vector<ScoredItem> result;
          SelectTopK(v->data(), n, ex, k, &result);
          const auto expected = BruteForceTopK(
              n, [&](int64_t r) { return (*v)[r]; }, ex, k);
          ASSERT_EQ(result, expected) << "n " << n << " k " << k << " excluded " << ex.size();
        }
      }
    }
  }
}

TEST(SelectTopKTest, EmptyAndFullyExcluded) {
  std::vector<ScoredItem> result = {{1, 2.0f}};
  SelectTopK(nullptr, 0, {}, 3, &result);
  EXPECT_TRUE(result.empty());
  const std::vector<float> scores = {3, 1, 2};
  const std::vector<int32_t> all = {0, 0, 1, 2};
  SelectTopK(scores.data(), 3, all, 3, &result);
  EXPECT_TRUE(result.empty());
  SelectTopK(scores.data(), 3, {1}, 3, &result);
  EXPECT_EQ(result, (std::vector<ScoredItem>{{0, 3.0f}, {2, 2.0f}}));
}

}  // namespace
}  // namespace freshet::kernels
