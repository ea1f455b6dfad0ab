#include "kernels/packed_items.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "kernels/cpu_backend.h"
#include "tests/kernels/test_util.h"

namespace freshet::kernels {
namespace {

using testing_util::OwnedItems;
using testing_util::RandomItems;
using testing_util::RandomVector;

// Queries with exclusions (sorted, with a duplicate and rows outside the matrix).
struct Queries {
  std::vector<std::vector<float>> vectors;
  std::vector<std::vector<int32_t>> excludes;
  std::vector<TopKQuery> queries;
};

Queries MakeQueries(int count, int dim, int64_t rows, uint64_t seed) {
  Queries q;
  q.vectors.reserve(count);
  q.excludes.reserve(count);
  for (int i = 0; i < count; ++i) {
    q.vectors.push_back(RandomVector(dim, seed + 101 * i));
    std::vector<int32_t> ex;
    for (int64_t r = i % 3; r < rows; r += 7 + i) ex.push_back(static_cast<int32_t>(r));
    if (!ex.empty()) ex.push_back(ex.back());
    ex.push_back(static_cast<int32_t>(rows + 5));
    q.excludes.push_back(std::move(ex));
  }
  for (int i = 0; i < count; ++i) q.queries.push_back({q.vectors[i].data(), q.excludes[i]});
  return q;
}

// Every answer equals the CPU backend's over the live matrix, bit for bit.
void ExpectSameAsBackend(const PackedItemMatrix& packed, const ItemMatrixView& items,
                         const Queries& q, int k) {
  CpuBackend cpu;
  std::vector<std::vector<ScoredItem>> want(q.queries.size()), got(q.queries.size());
  ASSERT_TRUE(cpu.TopK(items, q.queries, k, absl::MakeSpan(want)).ok());
  ASSERT_TRUE(packed.TopK(q.queries, k, absl::MakeSpan(got)).ok());
  for (size_t i = 0; i < q.queries.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "query " << i << " of " << q.queries.size() << ", k " << k;
  }
}

class PackedItemMatrixTest : public ::testing::TestWithParam<bool> {
 protected:
  PackedItemMatrix::Options options() const { return {.portable = GetParam()}; }
};

TEST_P(PackedItemMatrixTest, AnswersLikeTheBackendForEveryShapeAndBatch) {
  for (int dim : {1, 7, 16, 64, 100}) {
    for (int64_t rows : {1, 63, 64, 65, 1000, 2111}) {
      const OwnedItems items = RandomItems(rows, dim, dim + (dim % 3), /*with_bias=*/dim != 16,
                                           static_cast<uint64_t>(rows * 31 + dim));
      PackedItemMatrix packed(options());
      const std::vector<uint32_t> versions((rows + 63) / 64, 1);
      ASSERT_TRUE(packed.Update(items.view, versions).ok());
      for (int count : {1, 2, 5, 6, 7, 13}) {
        const Queries q = MakeQueries(count, dim, rows, static_cast<uint64_t>(count));
        for (int k : {1, 10, 3000}) ExpectSameAsBackend(packed, items.view, q, k);
      }
    }
  }
}

TEST_P(PackedItemMatrixTest, RepacksOnlyTheGroupsWhoseVersionMoved) {
  const int dim = 32;
  OwnedItems items = RandomItems(1000, dim, dim, /*with_bias=*/true, 7);
  std::vector<uint32_t> versions(16, 0);
  PackedItemMatrix packed(options());
  ASSERT_TRUE(packed.Update(items.view, versions).ok());
  EXPECT_EQ(packed.groups_packed(), 16);
  const Queries q = MakeQueries(6, dim, 1000, 3);

  // Rows 5 and 700 (groups 0 and 10) change, and their groups' versions move.
  for (int c = 0; c < dim; ++c) {
    items.vectors[5 * dim + c] = 3.0f;
    items.vectors[700 * dim + c] = -2.5f + 0.1f * c;
  }
  ++versions[0];
  ++versions[10];
  items.bias[900] = 50.0f;  // the bias is read at each call, not packed
  ASSERT_TRUE(packed.Update(items.view, versions).ok());
  EXPECT_EQ(packed.groups_packed(), 18);
  ExpectSameAsBackend(packed, items.view, q, 20);

  // Unchanged versions: nothing is packed again, and the copy still answers like the matrix.
  ASSERT_TRUE(packed.Update(items.view, versions).ok());
  EXPECT_EQ(packed.groups_packed(), 18);
  ExpectSameAsBackend(packed, items.view, q, 20);

  // A change whose version did not move is not seen: the copy answers from what it packed. (This
  // is the contract: the caller's versions are what keeps the copy current.)
  for (int c = 0; c < dim; ++c) items.vectors[300 * dim + c] = 10.0f;
  ASSERT_TRUE(packed.Update(items.view, versions).ok());
  std::vector<std::vector<ScoredItem>> got(1);
  const std::vector<float> ones(dim, 1.0f);
  const TopKQuery probe{ones.data(), {}};
  ASSERT_TRUE(packed.TopK(absl::MakeConstSpan(&probe, 1), 1, absl::MakeSpan(got)).ok());
  ASSERT_EQ(got[0].size(), 1u);
  EXPECT_NE(got[0][0].item, 300);
  ++versions[300 / 64];
  ASSERT_TRUE(packed.Update(items.view, versions).ok());
  ASSERT_TRUE(packed.TopK(absl::MakeConstSpan(&probe, 1), 1, absl::MakeSpan(got)).ok());
  EXPECT_EQ(got[0][0].item, 300);
  ExpectSameAsBackend(packed, items.view, q, 20);
}

TEST_P(PackedItemMatrixTest, FollowsAMatrixThatGrows) {
  const int dim = 24;
  OwnedItems all = RandomItems(1500, dim, dim, /*with_bias=*/true, 11);
  PackedItemMatrix packed(options());
  std::vector<uint32_t> versions(3, 0);  // groups beyond the third: version 0
  for (int64_t rows : {10, 100, 130, 700, 1500}) {
    ItemMatrixView view = all.view;
    view.rows = rows;
    ASSERT_TRUE(packed.Update(view, versions).ok());
    EXPECT_EQ(packed.rows(), rows);
    const Queries q = MakeQueries(4, dim, rows, static_cast<uint64_t>(rows));
    ExpectSameAsBackend(packed, view, q, 15);
  }
  // A new dimension starts over.
  const OwnedItems other = RandomItems(300, 8, 8, /*with_bias=*/false, 12);
  ASSERT_TRUE(packed.Update(other.view, versions).ok());
  ExpectSameAsBackend(packed, other.view, MakeQueries(3, 8, 300, 1), 5);
  // Clear() forgets the copy.
  packed.Clear();
  EXPECT_EQ(packed.rows(), 0);
}

TEST_P(PackedItemMatrixTest, RefusesWhatTheBackendRefuses) {
  PackedItemMatrix packed(options());
  const OwnedItems items = RandomItems(100, 16, 16, false, 1);
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  std::vector<std::vector<ScoredItem>> results(1);
  const std::vector<float> v(16, 1.0f);
  const TopKQuery query{v.data(), {}};
  EXPECT_TRUE(absl::IsInvalidArgument(
      packed.TopK(absl::MakeConstSpan(&query, 1), 0, absl::MakeSpan(results))));
  const std::vector<int32_t> unsorted = {5, 2};
  const TopKQuery bad{v.data(), unsorted};
  EXPECT_TRUE(absl::IsInvalidArgument(
      packed.TopK(absl::MakeConstSpan(&bad, 1), 3, absl::MakeSpan(results))));
  ItemMatrixView broken = items.view;
  broken.stride = 8;  // < dim
  EXPECT_TRUE(absl::IsInvalidArgument(packed.Update(broken, {})));
  // A copy never updated answers nothing.
  PackedItemMatrix empty(options());
  ASSERT_TRUE(empty.TopK(absl::MakeConstSpan(&query, 1), 3, absl::MakeSpan(results)).ok());
  EXPECT_TRUE(results[0].empty());
}

// The two-stage path (int8 scan, exact re-scoring) against the backend. Each check also counts the
// queries the int8 stage answered, so that the tests below can require that it ran.
class TwoStageTest : public ::testing::Test {
 protected:
  // Compares every query's answer with the backend's; returns how many queries the int8 stage
  // answered during the call.
  int64_t Check(const PackedItemMatrix& packed, const ItemMatrixView& items, const Queries& q,
                int k) {
    const int64_t before = packed.two_stage_queries();
    ExpectSameAsBackend(packed, items, q, k);
    return packed.two_stage_queries() - before;
  }
  // How many answers to expect from the int8 stage when it is available.
  static int64_t Expected(const PackedItemMatrix& packed, size_t queries) {
    return packed.two_stage() ? static_cast<int64_t>(queries) : 0;
  }
};

TEST_F(TwoStageTest, AnswersLikeTheBackendForEveryShapeBatchAndK) {
  for (int dim : {1, 3, 16, 63, 64, 65, 128}) {
    for (int64_t rows : {1, 64, 700, 3000}) {
      const OwnedItems items = RandomItems(rows, dim, dim + (dim % 2), /*with_bias=*/dim % 3 != 0,
                                           static_cast<uint64_t>(rows * 17 + dim));
      PackedItemMatrix packed;
      ASSERT_TRUE(packed.Update(items.view, {}).ok());
      for (int count : {1, 6, 12}) {
        const Queries q = MakeQueries(count, dim, rows, static_cast<uint64_t>(count + dim));
        for (int k : {1, 20, static_cast<int>(rows) + 5}) {
          // Every query fits the int8 stage here: at most 3000 candidates, all values tame.
          EXPECT_EQ(Check(packed, items.view, q, k), Expected(packed, q.queries.size()))
              << "dim " << dim << " rows " << rows << " k " << k;
        }
      }
    }
  }
}

TEST_F(TwoStageTest, RunsOnAServingSizedMatrix) {
  const int dim = 64;
  const OwnedItems items = RandomItems(10000, dim, dim, /*with_bias=*/true, 5);
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  const Queries q = MakeQueries(12, dim, 10000, 9);
  EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 12));
  // The exact kernels alone give the same answers and count none.
  PackedItemMatrix exact({.two_stage = false});
  ASSERT_TRUE(exact.Update(items.view, {}).ok());
  EXPECT_FALSE(exact.two_stage());
  EXPECT_EQ(Check(exact, items.view, q, 20), 0);
  // So does the portable path.
  PackedItemMatrix portable({.portable = true});
  ASSERT_TRUE(portable.Update(items.view, {}).ok());
  EXPECT_EQ(Check(portable, items.view, q, 20), 0);
}

TEST_F(TwoStageTest, ReQuantizesOnlyTheRowsWhoseVersionMoved) {
  const int dim = 64;
  const int64_t rows = 1000;  // 16 groups, the last one partial
  OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 31);
  std::vector<uint32_t> groups((rows + 63) / 64, 0);
  std::vector<uint32_t> row_versions(rows, 0);
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  const int64_t whole = packed.two_stage() ? rows : 0;
  EXPECT_EQ(packed.rows_quantized(), whole);
  const Queries q = MakeQueries(6, dim, rows, 3);
  EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 6));
  Rng rng(99);
  // Rounds of learning-like changes: a few rows, some made much larger (the group's bounds must
  // follow them up and back down), then a row becomes NaN (the int8 stage stops) and is mended.
  for (int round = 0; round < 6; ++round) {
    const int64_t before = packed.rows_quantized();
    const std::vector<int64_t> changed = {round * 7 % rows, 64 + round, 65 + round, 999 - round};
    for (const int64_t r : changed) {
      const float scale = round % 2 == 0 ? 50.0f : 0.02f;
      for (int c = 0; c < dim; ++c) {
        items.vectors[r * dim + c] = scale * static_cast<float>(rng.Uniform() - 0.5);
      }
      ++row_versions[r];
      ++groups[r / 64];
    }
    ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
    if (packed.two_stage()) {
      EXPECT_EQ(packed.rows_quantized() - before, 4) << "round " << round;
    }
    EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 6)) << "round " << round;
  }
  items.vectors[130 * dim + 5] = std::numeric_limits<float>::quiet_NaN();
  ++row_versions[130];
  ++groups[2];
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  EXPECT_EQ(Check(packed, items.view, q, 20), 0);  // the exact kernels answer
  items.vectors[130 * dim + 5] = 0.25f;
  ++row_versions[130];
  ++groups[2];
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 6));
}

TEST_F(TwoStageTest, TheBoundsFollowEachRowsQuantizationError) {
  // Query e_1. Row A = (1, 0.5157): int8 (127, 65), so its int8 score 0.5118 is 0.0039 below its
  // exact 0.5157. Row B = (3, 0.5126): int8 (127, 22), int8 score 0.5197 is 0.0071 above its exact
  // 0.5126. The int8 stage ranks B first; the exact top 1 is A, which only the rows' measured
  // errors (the bounds' e_g) keep among the candidates.
  const int dim = 16;
  const int64_t rows = 300;
  OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/false, 41);
  for (float& v : items.vectors) v *= 0.01f;
  std::vector<uint32_t> groups((rows + 63) / 64, 0);
  std::vector<uint32_t> row_versions(rows, 0);
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  const auto set_row = [&](int64_t r, float a, float b) {
    for (int c = 0; c < dim; ++c) items.vectors[r * dim + c] = 0.0f;
    items.vectors[r * dim] = a;
    items.vectors[r * dim + 1] = b;
    ++row_versions[r];
    ++groups[r / 64];
  };
  // A in group 0, B in group 2: each row's group must carry its own error, updated row by row.
  set_row(10, 1.0f, 0.5157f);
  set_row(140, 3.0f, 0.5126f);
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  std::vector<float> query(dim, 0.0f);
  query[1] = 1.0f;
  Queries q;
  q.vectors = {query};
  q.queries = {TopKQuery{q.vectors[0].data(), {}}};
  EXPECT_EQ(Check(packed, items.view, q, 1), Expected(packed, 1));
  // Swapped places (A re-quantized into B's old group and the other way round), and again.
  set_row(10, 3.0f, 0.5126f);
  set_row(140, 1.0f, 0.5157f);
  ASSERT_TRUE(packed.Update(items.view, groups, row_versions).ok());
  EXPECT_EQ(Check(packed, items.view, q, 1), Expected(packed, 1));
}

TEST_F(TwoStageTest, HandlesTiesFromDuplicateRows) {
  const int dim = 32;
  // 3000 rows, each of 40 distinct vectors repeated: many exact ties, broken by row.
  OwnedItems items = RandomItems(3000, dim, dim, /*with_bias=*/false, 21);
  for (int64_t r = 40; r < 3000; ++r) {
    for (int c = 0; c < dim; ++c) items.vectors[r * dim + c] = items.vectors[(r % 40) * dim + c];
  }
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  const Queries q = MakeQueries(7, dim, 3000, 4);
  for (int k : {1, 20, 100}) EXPECT_EQ(Check(packed, items.view, q, k), Expected(packed, 7));
  // 40000 rows of 8 vectors: more tied candidates than the re-scoring takes, so the exact kernels
  // answer, with the same result.
  OwnedItems many = RandomItems(40000, dim, dim, /*with_bias=*/false, 22);
  for (int64_t r = 8; r < 40000; ++r) {
    for (int c = 0; c < dim; ++c) many.vectors[r * dim + c] = many.vectors[(r % 8) * dim + c];
  }
  PackedItemMatrix other;
  ASSERT_TRUE(other.Update(many.view, {}).ok());
  EXPECT_EQ(Check(other, many.view, MakeQueries(3, dim, 40000, 5), 20), 0);
}

TEST_F(TwoStageTest, HandlesHugeTinyAndZeroRows) {
  const int dim = 48;
  const int64_t rows = 2000;
  OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 31);
  // Row magnitudes from 1e-38 (subnormal products) to 1e15, some rows zero, one huge column.
  const float scales[] = {1e15f, 1e-20f, 1e-38f, 0.0f, 1.0f, 3e7f, 1e-3f};
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = scales[r % 7];
    for (int c = 0; c < dim; ++c) items.vectors[r * dim + c] *= scale;
    if (r % 11 == 0) items.vectors[r * dim + r % dim] = 5e14f;
  }
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  Queries q = MakeQueries(6, dim, rows, 8);
  for (int c = 0; c < dim; ++c) {
    q.vectors[1][c] *= 1e-30f;
    q.vectors[2][c] *= 1e12f;
    q.vectors[3][c] = 0.0f;
  }
  for (int k : {1, 20, 500}) EXPECT_EQ(Check(packed, items.view, q, k), Expected(packed, 6));
  // Only huge and tiny rows, no bias: scores span the whole float range.
  items.view.bias = nullptr;
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  for (int k : {1, 20}) EXPECT_EQ(Check(packed, items.view, q, k), Expected(packed, 6));
}

TEST_F(TwoStageTest, FallsBackOnNonFiniteValuesWithTheSameAnswers) {
  const int dim = 24;
  const int64_t rows = 1500;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {nan, inf, -inf}) {
    // In a query: that query goes to the exact kernels, the others do not.
    {
      OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 41);
      PackedItemMatrix packed;
      ASSERT_TRUE(packed.Update(items.view, {}).ok());
      Queries q = MakeQueries(5, dim, rows, 2);
      q.vectors[2][7] = bad;
      EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 4));
    }
    // In a row: the exact kernels answer every query while the row is there.
    {
      OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 42);
      items.vectors[700 * dim + 3] = bad;
      PackedItemMatrix packed;
      std::vector<uint32_t> versions((rows + 63) / 64, 0);
      ASSERT_TRUE(packed.Update(items.view, versions).ok());
      const Queries q = MakeQueries(5, dim, rows, 3);
      EXPECT_EQ(Check(packed, items.view, q, 20), 0);
      items.vectors[700 * dim + 3] = 0.5f;
      ++versions[700 / 64];
      ASSERT_TRUE(packed.Update(items.view, versions).ok());
      EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 5));
    }
    // In the bias (read at each call): the exact kernels answer that call.
    {
      OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 43);
      PackedItemMatrix packed;
      ASSERT_TRUE(packed.Update(items.view, {}).ok());
      const Queries q = MakeQueries(5, dim, rows, 4);
      items.bias[1234] = bad;
      EXPECT_EQ(Check(packed, items.view, q, 20), 0);
      items.bias[1234] = 0.25f;
      EXPECT_EQ(Check(packed, items.view, q, 20), Expected(packed, 5));
    }
  }
}

// Rows built so that the top of the ranking is a cluster whose scores differ by far less than the
// int8 stage's error: its bounds cannot order them, and the exact re-scoring must.
TEST_F(TwoStageTest, OrdersCandidatesWithinTheQuantizationError) {
  const int dim = 64;
  const int64_t rows = 6000;
  OwnedItems items = RandomItems(rows, dim, dim, /*with_bias=*/true, 51);
  const std::vector<float> query = RandomVector(dim, 52);
  Rng rng(53);
  // Every 20th row: the query's direction (scaled up, so they rank first) plus noise far below
  // one quantization step; their biases differ in the last bits too.
  for (int64_t r = 0; r < rows; r += 20) {
    for (int c = 0; c < dim; ++c) {
      items.vectors[r * dim + c] = 3.0f * query[c] + 1e-5f * (rng.UniformFloat() - 0.5f);
    }
    items.bias[r] = 1e-6f * rng.UniformFloat();
  }
  // ...and a few exact duplicates among them.
  for (int c = 0; c < dim; ++c) items.vectors[400 * dim + c] = items.vectors[200 * dim + c];
  items.bias[400] = items.bias[200];
  PackedItemMatrix packed;
  ASSERT_TRUE(packed.Update(items.view, {}).ok());
  Queries q;
  q.vectors = {query, query};
  q.excludes = {{}, {0, 20, 200, 260}};
  for (size_t i = 0; i < 2; ++i) q.queries.push_back({q.vectors[i].data(), q.excludes[i]});
  for (int k : {1, 20, 150, 299, 400}) {
    EXPECT_EQ(Check(packed, items.view, q, k), Expected(packed, 2)) << "k " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, PackedItemMatrixTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Portable" : "Best";
                         });

}  // namespace
}  // namespace freshet::kernels
