#include "stream/memory_event_source.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stream/event.h"

namespace freshet::stream {
namespace {

Event MakeEvent(std::string user, std::string item, int64_t ts_ms, int64_t offset = -1) {
  Event event;
  event.user = std::move(user);
  event.item = std::move(item);
  event.type = "click";
  event.weight = 2.0f;
  event.ts_ms = ts_ms;
  event.position.offset = offset;
  return event;
}

TEST(MemoryEventSourceTest, DeliversEventsInOrderAndAssignsMissingOffsets) {
  MemoryEventSource source(
      {MakeEvent("u1", "a", 30), MakeEvent("u2", "b", 10, /*offset=*/77), MakeEvent("u3", "c", 20)},
      "test");
  EXPECT_EQ(source.Name(), "memory:test");
  EXPECT_EQ(source.size(), 3);
  EXPECT_FALSE(source.Finished());

  std::vector<Event> events;
  ASSERT_TRUE(source.Poll(2, absl::ZeroDuration(), &events).ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].user, "u1");  // vector order, not time order
  EXPECT_EQ(events[0].position.offset, 0);
  EXPECT_EQ(events[1].user, "u2");
  EXPECT_EQ(events[1].position.offset, 77);  // explicit offsets are kept
  EXPECT_EQ(events[1].type, "click");
  EXPECT_EQ(events[1].weight, 2.0f);
  EXPECT_FALSE(source.Finished());

  ASSERT_TRUE(source.Poll(10, absl::Seconds(1), &events).ok());
  ASSERT_EQ(events.size(), 3u);  // appended, not replaced
  EXPECT_EQ(events[2].user, "u3");
  EXPECT_EQ(events[2].position.offset, 2);
  EXPECT_TRUE(source.Finished());

  ASSERT_TRUE(source.Poll(10, absl::ZeroDuration(), &events).ok());
  EXPECT_EQ(events.size(), 3u);
}

TEST(MemoryEventSourceTest, StatsCountEveryEventAndNoMalformed) {
  MemoryEventSource source({MakeEvent("u", "a", 1), MakeEvent("u", "b", 2)});
  const SourceStats stats = source.stats();
  EXPECT_EQ(stats.records_read, 2);
  EXPECT_EQ(stats.events, 2);
  EXPECT_EQ(stats.malformed, 0);
}

TEST(MemoryEventSourceTest, EmptySourceIsFinished) {
  MemoryEventSource source({});
  EXPECT_TRUE(source.Finished());
  std::vector<Event> events;
  ASSERT_TRUE(source.Poll(5, absl::ZeroDuration(), &events).ok());
  EXPECT_TRUE(events.empty());
}

TEST(MemoryEventSourceTest, RewindReplaysFromTheStart) {
  MemoryEventSource source({MakeEvent("u", "a", 1), MakeEvent("u", "b", 2)});
  std::vector<Event> events;
  ASSERT_TRUE(source.Poll(10, absl::ZeroDuration(), &events).ok());
  EXPECT_TRUE(source.Finished());
  source.Rewind();
  EXPECT_FALSE(source.Finished());
  events.clear();
  ASSERT_TRUE(source.Poll(1, absl::ZeroDuration(), &events).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].item, "a");
}

}  // namespace
}  // namespace freshet::stream
