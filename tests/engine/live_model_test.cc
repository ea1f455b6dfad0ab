// LiveModel's batched scoring: answers from a batch, which reads a packed copy of the item vectors
// kept current group by group (serve.packed_items), equal the answers of the learner itself, bit
// for bit, while the model keeps learning and after its learner is replaced; the queries of a
// caller's burst (an HTTP I/O thread's round) are scored together on that thread when the burst
// ends.
#include "engine/live_model.h"

#include <cmath>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/burst_end.h"
#include "gtest/gtest.h"
#include "learner/blend_model.h"
#include "learner/learner.h"
#include "tests/store/test_util.h"

namespace freshet::engine {
namespace {

using freshet::testing::MakeEvents;

// `count` concurrent requests for users u0.., queued together so the scoring thread batches them.
std::vector<absl::StatusOr<RecommendResult>> AskMany(const LiveModel& model, int count, int k) {
  std::vector<std::promise<absl::StatusOr<RecommendResult>>> answers(count);
  std::vector<std::future<absl::StatusOr<RecommendResult>>> futures;
  for (auto& a : answers) futures.push_back(a.get_future());
  for (int u = 0; u < count; ++u) {
    model.RecommendAsync(
        absl::StrCat("u", u), k, /*exclude_seen=*/u % 2 == 0, {},
        [&answers, u](absl::StatusOr<RecommendResult> r) { answers[u].set_value(std::move(r)); });
  }
  std::vector<absl::StatusOr<RecommendResult>> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

// The learner's own answer (one query, scored by the backend over the live item matrix).
std::vector<ScoredId> Direct(const LiveModel& model, int user, int k) {
  learner::Recommendation rec;
  EXPECT_TRUE(model.Recommend(absl::StrCat("u", user), k, user % 2 == 0, &rec).ok());
  std::vector<ScoredId> out;
  model.WithLearner([&](const learner::Learner& l) {
    for (const kernels::ScoredItem& s : rec.items) {
      out.push_back(ScoredId{l.items().ExternalId(s.item), s.score});
    }
    return 0;
  });
  return out;
}

void ExpectBatchedEqualsDirect(const LiveModel& model, int users, int k) {
  const auto batched = AskMany(model, users, k);
  for (int u = 0; u < users; ++u) {
    ASSERT_TRUE(batched[u].ok()) << batched[u].status();
    const std::vector<ScoredId> direct = Direct(model, u, k);
    ASSERT_EQ(batched[u]->items.size(), direct.size()) << "u" << u;
    for (size_t i = 0; i < direct.size(); ++i) {
      EXPECT_EQ(batched[u]->items[i].item, direct[i].item) << "u" << u << " rank " << i;
      EXPECT_EQ(batched[u]->items[i].score, direct[i].score) << "u" << u << " rank " << i;
    }
  }
}

TEST(LiveModelTest, BatchedAnswersFromThePackedCopyEqualTheLearnersAsItLearns) {
  config::Config config;
  config.dim = 24;
  ASSERT_TRUE(config.serve_packed_items);  // the shipped default
  const auto backend = *kernels::CreateBackend("cpu");
  auto model = LiveModel::Create("bpr", config, backend.get());
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->Start();
  // 700 items: 11 groups of 64 rows, the last one partial and growing as new items arrive.
  const std::vector<stream::Event> events = MakeEvents(12000, 200, 700, 5);
  for (size_t begin = 0; begin < events.size(); begin += 1500) {
    const size_t n = std::min<size_t>(1500, events.size() - begin);
    (*model)->Apply(absl::MakeConstSpan(events).subspan(begin, n));
    ExpectBatchedEqualsDirect(**model, 60, 15);
  }
  const ModelStats stats = (*model)->stats();
  EXPECT_GT(stats.scoring_batches, 0);
  EXPECT_EQ(stats.scoring_queries, 8 * 60);
  // Packed at least once per group, and re-packed only as learning changed rows in between.
  EXPECT_GE(stats.scoring_groups_packed, 11);

  // A replaced learner (a restore) is scored from its own rows, not from the old copy.
  auto fresh = learner::Learner::Create("bpr", config, backend.get());
  ASSERT_TRUE(fresh.ok());
  const std::vector<stream::Event> other = MakeEvents(3000, 100, 150, 6);
  (*fresh)->ApplyBatch(other);
  (*model)->Replace(*std::move(fresh), nullptr);
  ExpectBatchedEqualsDirect(**model, 60, 15);
  (*model)->Stop();
}

TEST(LiveModelTest, QueriesOfABurstAreScoredAsOneBatchOnTheCallersThreadWhenItEnds) {
  config::Config config;
  config.dim = 16;
  const auto backend = *kernels::CreateBackend("cpu");
  auto model = LiveModel::Create("bpr", config, backend.get());
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->Start();
  (*model)->Apply(MakeEvents(4000, 40, 300, 8));
  constexpr int kUsers = 12;
  std::vector<absl::StatusOr<RecommendResult>> answers(kUsers, absl::UnknownError("not answered"));
  std::vector<std::thread::id> answered_on(kUsers);
  const int64_t batches_before = (*model)->stats().scoring_batches;
  {
    BurstEnd burst;
    for (int u = 0; u < kUsers; ++u) {
      (*model)->RecommendAsync(absl::StrCat("u", u), 10, /*exclude_seen=*/u % 2 == 0, {},
                               [&answers, &answered_on, u](absl::StatusOr<RecommendResult> r) {
                                 answers[u] = std::move(r);
                                 answered_on[u] = std::this_thread::get_id();
                               });
    }
    for (int u = 0; u < kUsers; ++u) {
      EXPECT_EQ(answers[u].status().code(), absl::StatusCode::kUnknown) << "answered early: u" << u;
    }
  }
  EXPECT_EQ((*model)->stats().scoring_batches, batches_before + 1);
  for (int u = 0; u < kUsers; ++u) {
    ASSERT_TRUE(answers[u].ok()) << "u" << u << ": " << answers[u].status();
    EXPECT_EQ(answered_on[u], std::this_thread::get_id()) << "u" << u;
    const std::vector<ScoredId> direct = Direct(**model, u, 10);
    ASSERT_EQ(answers[u]->items.size(), direct.size()) << "u" << u;
    for (size_t i = 0; i < direct.size(); ++i) {
      EXPECT_EQ(answers[u]->items[i].item, direct[i].item) << "u" << u << " rank " << i;
      EXPECT_EQ(answers[u]->items[i].score, direct[i].score) << "u" << u << " rank " << i;
    }
  }
  // Outside a burst the scoring thread answers, as before.
  ExpectBatchedEqualsDirect(**model, 20, 10);
  (*model)->Stop();
}

TEST(LiveModelTest, AHoldLearnsAboutTwoMillisecondsOfEvents) {
  EXPECT_EQ(LiveModel::kApplyHoldNs, 2'000'000);
  // Nothing measured yet (or nothing sensible): a few events.
  EXPECT_EQ(LiveModel::SliceFor(0), 8u);
  EXPECT_EQ(LiveModel::SliceFor(-5), 8u);
  EXPECT_EQ(LiveModel::SliceFor(std::nan("")), 8u);
  // 1 us an event: 2,000 would fit, the slice caps it.
  EXPECT_EQ(LiveModel::SliceFor(1'000), LiveModel::kApplySlice);
  EXPECT_EQ(LiveModel::SliceFor(10'000), 200u);
  EXPECT_EQ(LiveModel::SliceFor(400'000), 5u);
  // An event dearer than a hold: one at a time.
  EXPECT_EQ(LiveModel::SliceFor(3e6), 1u);
  EXPECT_EQ(LiveModel::SliceFor(std::numeric_limits<double>::infinity()), 1u);
}

TEST(LiveModelTest, AModelThatLearnsSlowlyHoldsTheLockForFewerEventsAtATime) {
  // blend spends tens of microseconds on an event (its components and ranker steps), so a full
  // slice of 512 would keep every read waiting for tens of milliseconds.
  config::Config config;
  config.dim = 16;
  const auto backend = *kernels::CreateBackend("cpu");
  auto model = LiveModel::Create("blend", config, backend.get());
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->CountRoundsAsVersion();  // the version counts the exclusive holds that learnt
  const std::vector<stream::Event> events = MakeEvents(2 * 512, 150, 400, 9);
  const auto span = absl::MakeConstSpan(events);
  (*model)->Apply(span.subspan(0, 512));  // the cost per event is measured
  const int64_t before = (*model)->model_version();
  (*model)->Apply(span.subspan(512));
  const int64_t holds = (*model)->model_version() - before;
  EXPECT_GT(holds, 1) << "512 events of blend were learnt under one hold";
  EXPECT_LE(holds, 512);
  // Every event is learnt, whatever the slices.
  const int64_t learnt =
      (*model)->WithLearner([](const learner::Learner& l) { return l.events_applied(); });
  EXPECT_EQ(learnt, 2 * 512);
}

// An ease and topics fit (blend) is deferred work: the event that makes it due ends its hold, it is
// prepared with the lock held shared and installed before the next event, so what is learnt is
// what a replay of the same events learns, where each fit runs inside the due event's learning.
TEST(LiveModelTest, AnEaseFitRunsBetweenHoldsAndLearnsWhatAReplayLearns) {
  config::Config config;
  config.dim = 16;
  config.blend_ease_refit = 300;
  config.blend_ease_items = 64;
  ASSERT_NE(config.blend_features.find("ease"), std::string::npos);
  ASSERT_NE(config.blend_features.find("topics"), std::string::npos);
  const auto backend = *kernels::CreateBackend("cpu");
  auto model = LiveModel::Create("blend", config, backend.get());
  ASSERT_TRUE(model.ok()) << model.status();
  auto replay = learner::Learner::Create("blend", config, backend.get());
  ASSERT_TRUE(replay.ok()) << replay.status();
  const std::vector<stream::Event> events = MakeEvents(2000, 60, 150, 4);
  const auto span = absl::MakeConstSpan(events);
  for (size_t begin = 0; begin < events.size(); begin += 97) {  // due points inside calls
    (*model)->Apply(span.subspan(begin, std::min<size_t>(97, events.size() - begin)));
  }
  (*replay)->ApplyBatch(events);

  const auto& replayed = dynamic_cast<const learner::BlendModel&>((*replay)->scoring());
  EXPECT_EQ(replayed.fits(), 2000 / 300);
  EXPECT_EQ(replayed.fits_deferred(), 0);
  (*model)->WithLearner([&](const learner::Learner& l) {
    const auto& live = dynamic_cast<const learner::BlendModel&>(l.scoring());
    EXPECT_EQ(live.fits(), 2000 / 300);
    EXPECT_EQ(live.fits_deferred(), live.fits());  // none inside a hold
    EXPECT_FALSE(l.DeferredWorkPending());
    EXPECT_EQ(live.weights(), replayed.weights());
    for (int u = 0; u < 60; u += 7) {
      const std::string user = absl::StrCat("u", u);
      learner::Recommendation a, b;
      EXPECT_TRUE(l.Recommend(user, 10, true, &a).ok());
      EXPECT_TRUE((*replay)->Recommend(user, 10, true, &b).ok());
      ASSERT_EQ(a.items.size(), b.items.size()) << user;
      for (size_t i = 0; i < a.items.size(); ++i) {
        EXPECT_EQ(a.items[i].item, b.items[i].item) << user;
        EXPECT_EQ(a.items[i].score, b.items[i].score) << user;
      }
    }
  });
}

}  // namespace
}  // namespace freshet::engine
