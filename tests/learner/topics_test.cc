// Topics groups items by spectral clustering of a co-occurrence table and scores a user by the
// popular items of their items' groups.
#include "learner/topics.h"

#include <algorithm>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "tests/learner/cooc_table_test_base.h"

namespace freshet::learner {
namespace {

// Items [0, 20) are one group and [20, 40) another; within a group, a lower item is more popular.
constexpr int32_t kItems = 40;
constexpr int32_t kGroupSize = 20;

class TopicsTest : public CoocTableTest {
 protected:
  TopicsTest() : CoocTableTest(kItems) {}
  // `n` users of `group`, three distinct items each, the group's lower items drawn more often;
  // item `rare`, when >= 0, is left out.
  void Users(int n, int group, int32_t rare = -1) {
    for (int u = 0; u < n; ++u) {
      std::vector<int32_t> items;
      while (items.size() < 3) {
        // The smaller of two uniform draws: item j of the group with weight 2 (20 - j) - 1.
        const int32_t j =
            static_cast<int32_t>(std::min(rng_.Below(kGroupSize), rng_.Below(kGroupSize)));
        const int32_t item = group * kGroupSize + j;
        if (item == rare || std::find(items.begin(), items.end(), item) != items.end()) continue;
        items.push_back(item);
      }
      User(items);
    }
  }
  Rng rng_{17};
};

// Two sets of items that different users consume become two groups, though most pairs inside a
// set were counted a few times or never.
TEST_F(TopicsTest, ItemsTheSameUsersConsumeShareAGroup) {
  Users(150, 0);
  Users(150, 1);
  Topics topics;
  ASSERT_TRUE(topics.Fit(*table_, kItems, 100, 2));
  EXPECT_EQ(topics.topics(), 2);
  const int32_t a = topics.GroupOf(0), b = topics.GroupOf(kGroupSize);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_NE(a, b);
  for (int32_t i = 0; i < kItems; ++i) {
    if (table_->count(i) == 0) continue;
    EXPECT_EQ(topics.GroupOf(i), i < kGroupSize ? a : b) << i;
  }
}

// With room for fewer items than were counted, an item left out joins the group its pairs favour.
TEST_F(TopicsTest, AnItemOutsideTheFitJoinsTheGroupItsPairsFavour) {
  Users(150, 0);
  Users(150, 1, /*rare=*/39);
  // Item 39 of the second group, taken only by these users, more often with the second group's
  // items than with the first's.
  User({20, 39});
  User({21, 39});
  User({22, 39});
  User({0, 39});
  Topics topics;
  ASSERT_TRUE(topics.Fit(*table_, kItems, 10, 2));  // the 10 items counted most
  ASSERT_GE(topics.GroupOf(20), 0);
  EXPECT_NE(topics.GroupOf(0), topics.GroupOf(20));
  EXPECT_EQ(topics.GroupOf(39), topics.GroupOf(20));
  // Every counted item has a group, and each keeps to its own set's.
  for (int32_t i = 0; i < kItems; ++i) {
    if (table_->count(i) == 0) continue;
    EXPECT_EQ(topics.GroupOf(i), topics.GroupOf(i < kGroupSize ? 0 : 20)) << i;
  }
  // Rows out of range belong nowhere.
  EXPECT_EQ(topics.GroupOf(kItems), -1);
  EXPECT_EQ(topics.GroupOf(-1), -1);
}

// A user whose one item is a rare one of the first group is served the first group's popular
// items; without a prior the second group's items score nothing, with one they score by
// popularity, below equally popular items of the user's group.
TEST_F(TopicsTest, AUserIsServedThePopularItemsOfTheirItemsGroups) {
  Users(150, 0);
  Users(150, 1);
  Topics topics;
  ASSERT_TRUE(topics.Fit(*table_, kItems, 100, 2));
  const std::vector<int32_t> recent{kGroupSize - 1};
  std::vector<float> scores(kItems, 0.0f);
  topics.AddScores(recent, 8, /*prior=*/0, absl::MakeSpan(scores));
  const int32_t best =
      static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  EXPECT_LT(best, 3);  // one of the first group's most drawn
  for (int32_t i = kGroupSize; i < kItems; ++i) EXPECT_EQ(scores[i], 0.0f) << i;
  for (int32_t i = 0; i < kGroupSize; ++i) EXPECT_GT(scores[i], 0.0f) << i;

  std::fill(scores.begin(), scores.end(), 0.0f);
  topics.AddScores(recent, 8, /*prior=*/2, absl::MakeSpan(scores));
  for (int32_t i = kGroupSize; i < kItems; ++i) EXPECT_GT(scores[i], 0.0f) << i;
  EXPECT_GT(scores[0], scores[kGroupSize]);
  // A window of 0 items, or items that belong nowhere, add nothing.
  std::vector<float> none(kItems, 0.0f);
  topics.AddScores(recent, 0, 2, absl::MakeSpan(none));
  const std::vector<int32_t> unknown{kItems + 5};
  topics.AddScores(unknown, 8, 2, absl::MakeSpan(none));
  EXPECT_EQ(none, std::vector<float>(kItems, 0.0f));
}

// Fewer than two items with a counted pair leave nothing to group: the fit is refused and an
// earlier one kept.
TEST_F(TopicsTest, AFitWithoutPairsIsRefusedAndTheEarlierKept) {
  Topics topics;
  EXPECT_FALSE(topics.Fit(*table_, kItems, 100, 2));
  EXPECT_EQ(topics.topics(), 0);
  std::vector<float> scores(kItems, 0.0f);
  const std::vector<int32_t> recent{0};
  topics.AddScores(recent, 8, 2, absl::MakeSpan(scores));
  EXPECT_EQ(scores, std::vector<float>(kItems, 0.0f));

  User({0});
  User({1});
  EXPECT_FALSE(topics.Fit(*table_, kItems, 100, 2));  // counted, never together
  Users(150, 0);
  Users(150, 1);
  ASSERT_TRUE(topics.Fit(*table_, kItems, 100, 2));
  const int32_t group = topics.GroupOf(0);
  EXPECT_FALSE(topics.Fit(*table_, 1, 100, 2));  // one item: nothing to pair
  EXPECT_EQ(topics.topics(), 2);
  EXPECT_EQ(topics.GroupOf(0), group);
}

// More groups asked for than items grouped: as many groups as items, at most. Two items only ever
// taken together end in one group (moved one at a time, they do not swap groups).
TEST_F(TopicsTest, GroupsAreAtMostTheItems) {
  User({0, 1});
  User({0, 1});
  Topics topics;
  ASSERT_TRUE(topics.Fit(*table_, kItems, 100, 32));
  EXPECT_EQ(topics.topics(), 2);
  EXPECT_GE(topics.GroupOf(0), 0);
  EXPECT_EQ(topics.GroupOf(0), topics.GroupOf(1));
}

// The fit's random start is seeded: two fits of one table group alike (a learner and a replica).
TEST_F(TopicsTest, TwoFitsOfOneTableGroupAlike) {
  Users(100, 0);
  Users(100, 1);
  User({5, 25});
  Topics one, two;
  ASSERT_TRUE(one.Fit(*table_, kItems, 30, 4));
  ASSERT_TRUE(two.Fit(*table_, kItems, 30, 4));
  for (int32_t i = 0; i < kItems; ++i) EXPECT_EQ(one.GroupOf(i), two.GroupOf(i)) << i;
  std::vector<float> a(kItems, 0.0f), b(kItems, 0.0f);
  const std::vector<int32_t> recent{5, 25};
  one.AddScores(recent, 8, 2, absl::MakeSpan(a));
  two.AddScores(recent, 8, 2, absl::MakeSpan(b));
  EXPECT_EQ(a, b);
  EXPECT_GT(one.Bytes(), 0);
}

}  // namespace
}  // namespace freshet::learner
