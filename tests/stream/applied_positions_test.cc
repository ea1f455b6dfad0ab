#include "stream/applied_positions.h"

#include <vector>

#include "gtest/gtest.h"

namespace freshet::stream {
namespace {

SourcePosition Pos(int32_t stream, int32_t partition, int64_t offset) {
  return SourcePosition{.stream = stream, .partition = partition, .offset = offset};
}

TEST(AppliedPositionsTest, AcceptsIncreasingOffsetsAndDropsDuplicates) {
  AppliedPositions applied;
  EXPECT_EQ(applied.Get(0, 0), -1);
  EXPECT_TRUE(applied.Accept(Pos(0, 0, 0)));
  EXPECT_TRUE(applied.Accept(Pos(0, 0, 1)));
  EXPECT_FALSE(applied.Accept(Pos(0, 0, 1)));  // re-delivered
  EXPECT_FALSE(applied.Accept(Pos(0, 0, 0)));
  EXPECT_TRUE(applied.Accept(Pos(0, 0, 5)));  // gaps (compacted topics) are fine
  EXPECT_FALSE(applied.Accept(Pos(0, 0, 4)));
  EXPECT_EQ(applied.Get(0, 0), 5);
}

TEST(AppliedPositionsTest, PartitionsAndStreamsAreIndependent) {
  AppliedPositions applied;
  EXPECT_TRUE(applied.Accept(Pos(0, 0, 10)));
  EXPECT_TRUE(applied.Accept(Pos(0, 1, 3)));
  EXPECT_TRUE(applied.Accept(Pos(1, 0, 7)));
  EXPECT_FALSE(applied.Accept(Pos(0, 1, 2)));
  EXPECT_TRUE(applied.Accept(Pos(1, 1, 0)));
  EXPECT_EQ(applied.Get(0, 0), 10);
  EXPECT_EQ(applied.Get(0, 1), 3);
  EXPECT_EQ(applied.Get(1, 0), 7);
  EXPECT_EQ(applied.Get(1, 1), 0);
  EXPECT_EQ(applied.Get(2, 0), -1);
  EXPECT_EQ(applied.size(), 4u);
}

TEST(AppliedPositionsTest, SetLoadsRewindsAndForgets) {
  AppliedPositions applied;
  applied.Set(0, 2, 100);
  EXPECT_FALSE(applied.Accept(Pos(0, 2, 100)));
  EXPECT_TRUE(applied.Accept(Pos(0, 2, 101)));
  applied.Set(0, 2, 50);  // rewind to a snapshot's position
  EXPECT_TRUE(applied.Accept(Pos(0, 2, 51)));
  applied.Set(0, 2, -1);
  EXPECT_EQ(applied.Get(0, 2), -1);
  EXPECT_TRUE(applied.empty());
  EXPECT_TRUE(applied.Accept(Pos(0, 2, 0)));
}

TEST(AppliedPositionsTest, AllIsSortedAndIterationSeesEveryEntry) {
  AppliedPositions applied;
  applied.Set(1, 0, 4);
  applied.Set(0, 3, 9);
  applied.Set(0, 1, 2);
  const std::vector<SourcePosition> all = applied.All();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].stream, 0);
  EXPECT_EQ(all[0].partition, 1);
  EXPECT_EQ(all[0].offset, 2);
  EXPECT_EQ(all[1].partition, 3);
  EXPECT_EQ(all[2].stream, 1);
  EXPECT_EQ(all[2].offset, 4);
  int64_t sum = 0;
  int entries = 0;
  for (const auto& [key, offset] : applied) {
    EXPECT_EQ(offset, applied.Get(key.first, key.second));
    sum += offset;
    ++entries;
  }
  EXPECT_EQ(entries, 3);
  EXPECT_EQ(sum, 15);
  applied.Clear();
  EXPECT_TRUE(applied.empty());
}

}  // namespace
}  // namespace freshet::stream
