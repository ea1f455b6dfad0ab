#include "kernels/packed_items.h"

#include <cstdint>
#include <vector>

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

INSTANTIATE_TEST_SUITE_P(Kernels, PackedItemMatrixTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Portable" : "Best";
                         });

}  // namespace
}  // namespace freshet::kernels
