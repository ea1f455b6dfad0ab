// k-means from several k-means++ starts keeps the tightest grouping.
#include "learner/kmeans.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"

namespace freshet::learner {
namespace {

// Rows around `groups` random centres in `dims` dimensions, group g holding 5 + 3 g rows, each a
// centre plus noise of s.d. `spread` per coordinate; `planted` gets each row's group.
Eigen::MatrixXd PlantedRows(int groups, int dims, double spread, std::vector<int32_t>* planted) {
  Rng rng(5);
  Eigen::MatrixXd centres(groups, dims);
  for (int g = 0; g < groups; ++g) {
    for (int d = 0; d < dims; ++d) centres(g, d) = rng.Normal();
  }
  planted->clear();
  for (int g = 0; g < groups; ++g) planted->insert(planted->end(), 5 + 3 * g, g);
  Eigen::MatrixXd x(static_cast<Eigen::Index>(planted->size()), dims);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (int d = 0; d < dims; ++d) x(i, d) = centres((*planted)[i], d) + spread * rng.Normal();
  }
  return x;
}

// Whether `found` cuts the rows exactly as `planted` does (group numbers aside).
bool SamePartition(const std::vector<int32_t>& found, const std::vector<int32_t>& planted) {
  std::map<int32_t, int32_t> to_planted, to_found;
  for (size_t i = 0; i < found.size(); ++i) {
    if (to_planted.emplace(found[i], planted[i]).first->second != planted[i]) return false;
    if (to_found.emplace(planted[i], found[i]).first->second != found[i]) return false;
  }
  return true;
}

double Inertia(const Eigen::MatrixXd& x, const std::vector<int32_t>& group, int k) {
  Eigen::MatrixXd sums = Eigen::MatrixXd::Zero(k, x.cols());
  std::vector<double> sizes(static_cast<size_t>(k), 0.0);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    sums.row(group[i]) += x.row(i);
    sizes[group[i]] += 1;
  }
  double total = 0;
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    total += (x.row(i) - sums.row(group[i]) / sizes[group[i]]).squaredNorm();
  }
  return total;
}

TEST(KMeansTest, SeveralStartsFindThePlantedGroupsWhereOneStartMisses) {
  constexpr int kGroups = 16;
  std::vector<int32_t> planted;
  const Eigen::MatrixXd x = PlantedRows(kGroups, 6, 0.05, &planted);
  int one_start_found = 0, ten_starts_found = 0;
  constexpr int kSeeds = 20;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Rng one(seed), ten(seed);
    const KMeansGroups a = KMeans(x, kGroups, 1, 50, one);
    const KMeansGroups b = KMeans(x, kGroups, 10, 50, ten);
    ASSERT_EQ(a.group.size(), planted.size());
    ASSERT_EQ(b.group.size(), planted.size());
    one_start_found += SamePartition(a.group, planted) ? 1 : 0;
    ten_starts_found += SamePartition(b.group, planted) ? 1 : 0;
    // The kept run is at least as tight as the first start alone (both begin with the same draw).
    EXPECT_LE(b.inertia, a.inertia * (1 + 1e-12)) << "seed " << seed;
    // The reported inertia is the grouping's own, within rounding.
    EXPECT_NEAR(b.inertia, Inertia(x, b.group, kGroups), 1e-9 * (1 + b.inertia)) << "seed " << seed;
  }
  EXPECT_EQ(ten_starts_found, kSeeds) << "one start alone: " << one_start_found;
  EXPECT_LT(one_start_found, kSeeds);  // the case the starts are there for
}

TEST(KMeansTest, OneGroupAndAsManyGroupsAsRows) {
  std::vector<int32_t> planted;
  const Eigen::MatrixXd x = PlantedRows(3, 2, 0.1, &planted);  // 5 + 8 + 11 rows
  Rng rng(3);
  const KMeansGroups one = KMeans(x, 1, 4, 50, rng);
  EXPECT_TRUE(std::all_of(one.group.begin(), one.group.end(), [](int32_t g) { return g == 0; }));
  EXPECT_NEAR(one.inertia, Inertia(x, one.group, 1), 1e-9 * (1 + one.inertia));
  const int rows = static_cast<int>(x.rows());
  const KMeansGroups each = KMeans(x, rows, 2, 50, rng);
  std::vector<int32_t> sorted = each.group;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < rows; ++i) EXPECT_EQ(sorted[i], i);  // every row a group of its own
  EXPECT_NEAR(each.inertia, 0.0, 1e-12);
}

}  // namespace
}  // namespace freshet::learner
