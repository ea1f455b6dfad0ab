#include "stream/applied_positions.h"

#include <string>
#include <utility>
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

std::vector<std::pair<int64_t, std::string>> Ids(const AppliedPositions& applied, int64_t from) {
  std::vector<std::pair<int64_t, std::string>> ids;
  applied.ForEachIdFrom(
      from, [&](int64_t seq, absl::string_view id) { ids.emplace_back(seq, std::string(id)); });
  return ids;
}

TEST(AppliedPositionsTest, AnIdIsAcceptedOnceAmongTheRememberedOnes) {
  AppliedPositions applied;
  // Without a capacity nothing is remembered: ids are not checked.
  EXPECT_TRUE(applied.AcceptId("a"));
  EXPECT_TRUE(applied.AcceptId("a"));
  EXPECT_EQ(applied.ids(), 0u);
  applied.set_id_capacity(3);
  EXPECT_TRUE(applied.AcceptId("a"));
  EXPECT_FALSE(applied.AcceptId("a"));
  EXPECT_TRUE(applied.AcceptId("b"));
  EXPECT_TRUE(applied.AcceptId("c"));
  EXPECT_FALSE(applied.AcceptId("b"));
  // A fourth id forgets the oldest: "a" is new again, and "b" is then the oldest.
  EXPECT_TRUE(applied.AcceptId("d"));
  EXPECT_EQ(applied.ids(), 3u);
  EXPECT_TRUE(applied.AcceptId("a"));
  EXPECT_TRUE(applied.AcceptId("b"));
  EXPECT_FALSE(applied.AcceptId("d"));
  // Numbers: one per remembered id, in order, never reused.
  EXPECT_EQ(applied.first_id_seq(), 3);
  EXPECT_EQ(applied.next_id_seq(), 6);
  EXPECT_EQ(Ids(applied, 0),
            (std::vector<std::pair<int64_t, std::string>>{{3, "d"}, {4, "a"}, {5, "b"}}));
  EXPECT_EQ(Ids(applied, 5), (std::vector<std::pair<int64_t, std::string>>{{5, "b"}}));
  EXPECT_TRUE(Ids(applied, 6).empty());
  // Lowering the capacity forgets the oldest at once.
  applied.set_id_capacity(1);
  EXPECT_EQ(applied.first_id_seq(), 5);
  EXPECT_TRUE(applied.AcceptId("a"));
  // Positions are separate: clearing them keeps the ids, ClearIds() forgets them.
  applied.Clear();
  EXPECT_FALSE(applied.AcceptId("a"));
  applied.ClearIds();
  EXPECT_EQ(applied.next_id_seq(), 0);
  EXPECT_TRUE(applied.AcceptId("a"));
}

TEST(AppliedPositionsTest, RestoredIdsKeepTheirNumbersAndTheNewestCapacity) {
  AppliedPositions applied;
  applied.set_id_capacity(2);
  applied.RestoreId(10, "x");
  applied.RestoreId(11, "y");
  applied.RestoreId(11, "z");  // out of order (a damaged store): skipped
  applied.RestoreId(12, "y");  // already held: skipped, but its number is not reused
  applied.RestoreId(14, "w");  // a gap, and the capacity keeps the newest two
  EXPECT_EQ(Ids(applied, 0), (std::vector<std::pair<int64_t, std::string>>{{11, "y"}, {14, "w"}}));
  EXPECT_EQ(applied.first_id_seq(), 11);
  EXPECT_EQ(applied.next_id_seq(), 15);
  EXPECT_FALSE(applied.AcceptId("w"));
  EXPECT_TRUE(applied.AcceptId("x"));
  EXPECT_EQ(Ids(applied, 15), (std::vector<std::pair<int64_t, std::string>>{{15, "x"}}));
}

}  // namespace
}  // namespace freshet::stream
