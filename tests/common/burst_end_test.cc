// BurstEnd: work deferred in a scope runs once per target at its end; none is kept without one.
#include "common/burst_end.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace freshet {
namespace {

TEST(BurstEndTest, WithoutAScopeTheCallerWorksAtOnce) {
  int woken = 0;
  EXPECT_FALSE(BurstEnd::Defer(&woken, [&] { ++woken; }));
  EXPECT_EQ(woken, 0);  // not kept: the caller does the work itself
}

TEST(BurstEndTest, EachTargetsWorkRunsOnceWhenTheOutermostScopeEnds) {
  int a = 0;
  int b = 0;
  {
    BurstEnd outer;
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(BurstEnd::Defer(&a, [&] { ++a; }));
    }
    {
      BurstEnd inner;  // joins the outer scope
      EXPECT_TRUE(BurstEnd::Defer(&b, [&] { ++b; }));
      EXPECT_TRUE(BurstEnd::Defer(&a, [&] { ++a; }));
    }
    EXPECT_EQ(a, 0);
    EXPECT_EQ(b, 0);
  }
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  // The scope is closed: the next piece of work is the caller's again.
  EXPECT_FALSE(BurstEnd::Defer(&a, [&] { ++a; }));
}

TEST(BurstEndTest, WorkRunsInTheOrderItWasFirstDeferred) {
  std::string order;
  {
    BurstEnd burst;
    BurstEnd::Defer(&order, [&] { order += "score "; });
    int other = 0;
    BurstEnd::Defer(&other, [&] { order += "wake "; });
    BurstEnd::Defer(&order, [&] { order += "again "; });  // the first one per key is kept
  }
  EXPECT_EQ(order, "score wake ");
}

TEST(BurstEndTest, DeferredWorkMayOpenAScopeOfItsOwn) {
  // As LiveModel's scoring at the end of an I/O round does: its answers' wake-ups are deferred to
  // the end of the scope it opens, not to the one that is ending.
  int wakes = 0;
  int wakes_when_scoring_ended = -1;
  {
    BurstEnd round;
    BurstEnd::Defer(&round, [&] {
      EXPECT_FALSE(BurstEnd::Defer(&wakes, [&] { ++wakes; }));  // no scope open while it runs
      {
        BurstEnd answers;
        for (int i = 0; i < 3; ++i) EXPECT_TRUE(BurstEnd::Defer(&wakes, [&] { ++wakes; }));
        wakes_when_scoring_ended = wakes;
      }
    });
  }
  EXPECT_EQ(wakes_when_scoring_ended, 0);
  EXPECT_EQ(wakes, 1);
}

TEST(BurstEndTest, AScopeBelongsToItsThread) {
  int woken = 0;
  bool deferred_elsewhere = true;
  {
    BurstEnd scope;
    std::thread other([&] { deferred_elsewhere = BurstEnd::Defer(&woken, [&] { ++woken; }); });
    other.join();
  }
  EXPECT_FALSE(deferred_elsewhere);
  EXPECT_EQ(woken, 0);
}

}  // namespace
}  // namespace freshet
