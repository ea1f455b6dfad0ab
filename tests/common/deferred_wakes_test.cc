// DeferredWakes: wake-ups deferred in a scope run once per target at its end; none without one.
#include "common/deferred_wakes.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace freshet {
namespace {

TEST(DeferredWakesTest, WithoutAScopeTheCallerWakesAtOnce) {
  int woken = 0;
  EXPECT_FALSE(DeferredWakes::Defer(&woken, [&] { ++woken; }));
  EXPECT_EQ(woken, 0);  // not kept: the caller wakes its target itself
}

TEST(DeferredWakesTest, EachTargetIsWokenOnceWhenTheOutermostScopeEnds) {
  int a = 0;
  int b = 0;
  {
    DeferredWakes outer;
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(DeferredWakes::Defer(&a, [&] { ++a; }));
    }
    {
      DeferredWakes inner;  // joins the outer scope
      EXPECT_TRUE(DeferredWakes::Defer(&b, [&] { ++b; }));
      EXPECT_TRUE(DeferredWakes::Defer(&a, [&] { ++a; }));
    }
    EXPECT_EQ(a, 0);
    EXPECT_EQ(b, 0);
  }
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  // The scope is closed: the next wake-up is the caller's again.
  EXPECT_FALSE(DeferredWakes::Defer(&a, [&] { ++a; }));
}

TEST(DeferredWakesTest, AScopeBelongsToItsThread) {
  int woken = 0;
  bool deferred_elsewhere = true;
  {
    DeferredWakes scope;
    std::thread other([&] { deferred_elsewhere = DeferredWakes::Defer(&woken, [&] { ++woken; }); });
    other.join();
  }
  EXPECT_FALSE(deferred_elsewhere);
  EXPECT_EQ(woken, 0);
}

}  // namespace
}  // namespace freshet
