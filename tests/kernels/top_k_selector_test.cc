#include "kernels/internal/top_k_selector.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/kernels/test_util.h"

namespace freshet::kernels::internal {
namespace {

std::vector<ScoredItem> Take(TopKSelector& selector) {
  std::vector<ScoredItem> out;
  selector.TakeSorted(&out);
  return out;
}

TEST(TopKSelectorTest, KeepsTheBestAndFillsBeforeFiltering) {
  TopKSelector selector;
  selector.Reset(3, {});
  EXPECT_FALSE(selector.full());
  selector.Offer(0, 1.0f);
  selector.Offer(1, 5.0f);
  EXPECT_FALSE(selector.full());
  selector.Offer(2, -2.0f);
  ASSERT_TRUE(selector.full());
  EXPECT_EQ(selector.threshold(), -2.0f);
  selector.Offer(3, 3.0f);
  EXPECT_EQ(selector.threshold(), 1.0f);
  selector.Offer(4, 0.5f);  // below the threshold
  EXPECT_EQ(Take(selector), (std::vector<ScoredItem>{{1, 5.0f}, {3, 3.0f}, {0, 1.0f}}));
  EXPECT_FALSE(selector.full());
}

TEST(TopKSelectorTest, TiesKeepTheLowerRow) {
  TopKSelector selector;
  selector.Reset(2, {});
  for (int32_t row = 0; row < 10; ++row) selector.Offer(row, 7.0f);
  EXPECT_EQ(Take(selector), (std::vector<ScoredItem>{{0, 7.0f}, {1, 7.0f}}));
}

TEST(TopKSelectorTest, SkipsNanAndExcludedRows) {
  const std::vector<int32_t> exclude = {1, 1, 4, 4, 4, 9};
  TopKSelector selector;
  selector.Reset(10, exclude);
  for (int32_t row = 0; row < 10; ++row) {
    selector.Offer(row,
                   row == 6 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(row));
  }
  EXPECT_EQ(Take(selector), (std::vector<ScoredItem>{
                                {8, 8.0f}, {7, 7.0f}, {5, 5.0f}, {3, 3.0f}, {2, 2.0f}, {0, 0.0f}}));
}

TEST(TopKSelectorTest, ResetStartsOver) {
  TopKSelector selector;
  selector.Reset(1, {});
  selector.Offer(5, 1.0f);
  const std::vector<int32_t> exclude = {2};
  selector.Reset(2, exclude);
  selector.Offer(1, 0.0f);
  selector.Offer(2, 9.0f);
  selector.Offer(3, -1.0f);
  EXPECT_EQ(Take(selector), (std::vector<ScoredItem>{{1, 0.0f}, {3, -1.0f}}));
}

TEST(TopKSelectorDeathTest, RowsMustIncrease) {
  TopKSelector selector;
  selector.Reset(4, {});
  selector.Offer(3, 1.0f);
  EXPECT_DEATH(selector.Offer(3, 2.0f), "row > last_row_");
}

}  // namespace
}  // namespace freshet::kernels::internal
