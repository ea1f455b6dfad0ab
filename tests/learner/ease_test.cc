// Ease fits the closed form of EASE to a co-occurrence table, over the items counted most.
#include "learner/ease.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/learner/cooc_table_test_base.h"

namespace freshet::learner {
namespace {

class EaseTest : public CoocTableTest {
 protected:
  EaseTest() : CoocTableTest(kItems) {}
  static constexpr int32_t kItems = 4;
};

// With two items G = [[c0 + l, w], [w, c1 + l]], whose inverse gives B(0, 1) = w / (c0 + l) and
// B(1, 0) = w / (c1 + l): the weight of a pair, relative to how common the item it is read from is.
TEST_F(EaseTest, TwoItemsGiveTheClosedForm) {
  for (int u = 0; u < 10; ++u) User({0, 1});
  for (int u = 0; u < 5; ++u) User({0});
  Ease ease;
  ASSERT_TRUE(ease.Fit(*table_, kItems, 100, /*lambda=*/5.0));
  EXPECT_EQ(ease.items(), (std::vector<int32_t>{0, 1}));  // items 2 and 3 were never counted
  EXPECT_NEAR(ease.Weight(0, 1), 10.0 / (15 + 5), 1e-6);
  EXPECT_NEAR(ease.Weight(1, 0), 10.0 / (10 + 5), 1e-6);
  EXPECT_EQ(ease.Weight(0, 0), 0.0f);
  EXPECT_EQ(ease.Weight(0, 2), 0.0f);
}

// Over three items the weights differ from the counts': x goes with both a common item h and y,
// and h with everything. B(x, y) explains y by x, net of what h explains, so y outranks h for a
// user who took x, although h co-occurs with x as often as y does.
TEST_F(EaseTest, AnItemThatGoesWithEverythingIsDiscounted) {
  for (int u = 0; u < 10; ++u) User({0, 1, 2});  // h = 0, x = 1, y = 2
  for (int u = 0; u < 30; ++u) User({0, 3});
  Ease ease;
  ASSERT_TRUE(ease.Fit(*table_, kItems, 100, /*lambda=*/5.0));
  EXPECT_EQ(table_->neighbours(1).at(0), table_->neighbours(1).at(2));  // the same counts
  std::vector<float> scores(kItems, 0.0f);
  const std::vector<int32_t> recent{1};
  ease.AddScores(recent, 8, absl::MakeSpan(scores));
  EXPECT_GT(scores[2], scores[0]);
  EXPECT_EQ(scores[1], 0.0f);  // an item never predicts itself
}

// With room for fewer items than were counted, the least counted are left out: they score 0 and
// their rows add nothing.
TEST_F(EaseTest, OnlyTheItemsCountedMostAreFitted) {
  for (int u = 0; u < 10; ++u) User({0, 1, 2});
  for (int u = 0; u < 10; ++u) User({0, 1});
  Ease ease;
  ASSERT_TRUE(ease.Fit(*table_, kItems, 2, /*lambda=*/5.0));
  EXPECT_EQ(ease.items(), (std::vector<int32_t>{0, 1}));
  std::vector<float> scores(kItems, 0.0f);
  const std::vector<int32_t> recent{2, 0};
  ease.AddScores(recent, 8, absl::MakeSpan(scores));
  EXPECT_EQ(scores[2], 0.0f);
  EXPECT_NEAR(scores[1], ease.Weight(0, 1), 1e-6);
  // A window of one reads only the newest item.
  std::vector<float> last(kItems, 0.0f);
  const std::vector<int32_t> newest_unfitted{0, 2};
  ease.AddScores(newest_unfitted, 1, absl::MakeSpan(last));
  EXPECT_EQ(last, std::vector<float>(kItems, 0.0f));
  // Scores only reach the rows given.
  std::vector<float> short_scores(1, 0.0f);
  ease.AddScores(recent, 8, absl::MakeSpan(short_scores));
  EXPECT_EQ(short_scores[0], 0.0f);
}

// A user who goes back and forth between two items pairs them again at every event while each
// count grows by one, so G = [[c0 + l, w], [w, c1 + l]] with w above both: indefinite, and its
// inverse no least-squares fit (B(0, 1) = w / (c0 + l) > 1). The ridge grows fourfold until G is
// positive definite, and the fit is the closed form with that ridge.
TEST_F(EaseTest, AnIndefiniteGramianTakesMoreRidge) {
  User({0, 1, 0, 1, 0, 1, 0, 1});
  User({2, 3});
  const double w = 0.5 * (table_->neighbours(0).at(1) + table_->neighbours(1).at(0));
  const double c0 = static_cast<double>(table_->count(0));
  const double c1 = static_cast<double>(table_->count(1));
  constexpr double kLambda = 0.5;
  ASSERT_LT((c0 + kLambda) * (c1 + kLambda), w * w) << "the table must make G indefinite";
  double ridge = kLambda;
  while ((c0 + ridge) * (c1 + ridge) <= w * w) ridge *= 4;
  Ease ease;
  ASSERT_TRUE(ease.Fit(*table_, kItems, 100, kLambda));
  EXPECT_NEAR(ease.Weight(0, 1), w / (c0 + ridge), 1e-5);
  EXPECT_NEAR(ease.Weight(1, 0), w / (c1 + ridge), 1e-5);
  EXPECT_LT(ease.Weight(0, 1), 1.0f);
}

}  // namespace
}  // namespace freshet::learner
