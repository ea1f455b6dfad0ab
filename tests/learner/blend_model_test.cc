// The blend learns its weights from the stream (test-then-train), survives a round trip through
// its persisted rows, and cooc's sessions keep events hours apart from co-occurring.
#include "learner/blend_model.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/cooc_model.h"
#include "learner/learner.h"
#include "stream/synthetic/synthetic_stream.h"

namespace freshet::learner {
namespace {

std::vector<stream::Event> MakeStream(double sequential, uint64_t seed, int64_t events = 20'000) {
  stream::SyntheticStreamOptions o;
  o.events = events;
  o.users = 500;
  o.items = 2000;
  o.topics = 12;
  o.user_topics = 1;
  o.topic_concentration = 0.9;
  o.popularity_exponent = 0.5;
  o.drift_rate = 0;
  o.sequential_probability = sequential;
  o.max_successors = 2;
  o.seed = seed;
  auto generator = stream::SyntheticStream::Create(o);
  EXPECT_TRUE(generator.ok()) << generator.status();
  std::vector<stream::Event> out(static_cast<size_t>(o.events));
  for (stream::Event& e : out) generator->Next(&e);
  return out;
}

// The events of `events` the ranker learns from with blend.learn_repeats off: those of users with
// earlier events whose item is not among their latest `recent` ones (a request excludes those
// items, and a user without history is answered by popularity); with `cold_below` > 0, only those
// of users with fewer earlier events than that.
int64_t RankableEvents(const std::vector<stream::Event>& events, int recent, int cold_below = 0) {
  absl::flat_hash_map<std::string, std::deque<std::string>> latest;
  absl::flat_hash_map<std::string, int> earlier;
  int64_t n = 0;
  for (const stream::Event& e : events) {
    std::deque<std::string>& items = latest[e.user];
    const bool cold = cold_below <= 0 || earlier[e.user]++ < cold_below;
    if (cold && !items.empty() && std::find(items.begin(), items.end(), e.item) == items.end()) {
      ++n;
    }
    items.push_back(e.item);
    if (static_cast<int>(items.size()) > recent) items.pop_front();
  }
  return n;
}

class BlendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = kernels::CreateBackend("cpu");
    ASSERT_TRUE(backend.ok());
    backend_ = std::move(*backend);
  }
  std::unique_ptr<Learner> Learnt(const std::vector<stream::Event>& events,
                                  const config::Config& config) {
    auto learner = Learner::Create("blend", config, backend_.get());
    EXPECT_TRUE(learner.ok()) << learner.status();
    (*learner)->ApplyBatch(events);
    return std::move(*learner);
  }
  static const BlendModel& Blend(const Learner& learner) {
    return dynamic_cast<const BlendModel&>(learner.scoring());
  }
  static float Weight(const Learner& learner, BlendModel::Feature feature) {
    const BlendModel& blend = Blend(learner);
    for (size_t f = 0; f < blend.features().size(); ++f) {
      if (blend.features()[f] == feature) return blend.weights()[f];
    }
    ADD_FAILURE() << "no feature " << BlendModel::FeatureName(feature);
    return 0;
  }
  // Learns a stream where the next item follows the last one and a stream where it does not,
  // with `config`: the ranker must lean more on the transitions in the first. Returns the learner
  // of the first.
  std::unique_ptr<Learner> ExpectTransitionWeightFollowsTheStream(const config::Config& config) {
    auto sequential = Learnt(MakeStream(0.8, 3), config);
    const auto topical = Learnt(MakeStream(0.0, 3), config);
    const float seq = Weight(*sequential, BlendModel::kTransitions);
    const float top = Weight(*topical, BlendModel::kTransitions);
    EXPECT_GT(seq, top + 0.1f) << "sequential stream " << seq << ", topical stream " << top;
    // Relative to the embedding's weight too, so the test does not hinge on the weights' scale.
    EXPECT_GT(seq / Weight(*sequential, BlendModel::kBpr),
              top / Weight(*topical, BlendModel::kBpr));
    return sequential;
  }
  std::unique_ptr<kernels::Backend> backend_;
};

// Where the next item follows the last one, the ranker leans on the transitions; where it does
// not, it leans on them less. With the online update disabled the weights never move.
TEST_F(BlendTest, RankerLearnsTheTransitionWeightFromTheStream) {
  config::Config config;
  const auto sequential = ExpectTransitionWeightFollowsTheStream(config);
  EXPECT_GT(Blend(*sequential).ranker_steps(), config.blend_warmup_events);

  config.blend_lr = 0;
  const auto frozen = Learnt(MakeStream(0.8, 3), config);
  EXPECT_EQ(Blend(*frozen).ranker_steps(), 0);
  EXPECT_NE(Blend(*sequential).weights(), Blend(*frozen).weights());
}

// Ranker steps on a sample of the catalog learn the same thing: the transition weight follows the
// stream. They cost blend.sample item scorings, so with the same budget they come far more often.
TEST_F(BlendTest, SampledStepsLearnTheTransitionWeightFromTheStream) {
  config::Config config;
  config.blend_sample = 64;
  config.blend_sample_top = 16;
  config.blend_train_cost = 64;
  config.blend_warmup_events = 0;
  config.blend_context_steps = false;  // every step from the budget
  // The components whose weights the check compares (profile and ease, which the defaults add,
  // take weight from bpr on the topical stream and blur the ratio of the two).
  config.blend_features = "bpr,cooc,history,transitions,popularity,trending,ials";
  const auto sequential = ExpectTransitionWeightFollowsTheStream(config);
  // One step per event it learns from (with 2+ items in the catalog).
  const int64_t rankable = RankableEvents(MakeStream(0.8, 3), config.history_recent);
  ASSERT_GT(rankable, 10'000);
  EXPECT_GE(Blend(*sequential).ranker_steps(), rankable - 10);
  EXPECT_LE(Blend(*sequential).ranker_steps(), rankable);

  // A full-catalog step costs the catalog (2,000 items): 64 per event buys one every 32 events.
  config.blend_sample = 0;
  const auto full = Learnt(MakeStream(0.8, 3), config);
  EXPECT_LT(Blend(*full).ranker_steps(), 20'000 / 16);
}

// With blend.context_steps the ranker also steps on every event of a user who takes a weight set
// of their own (here the cold set: fewer than 20 earlier events), outside the budget; without it,
// and with no budget, it never steps after the warm-up.
TEST_F(BlendTest, TheColdSetLearnsFromEveryColdEvent) {
  config::Config config;
  config.cooc_session_gap_s = 0;  // no sessions, so no session-start set
  config.blend_warmup_events = 0;
  config.blend_train_cost = 0;
  config.blend_context_steps = false;
  const std::vector<stream::Event> events = MakeStream(0.5, 5, 4000);
  EXPECT_EQ(Blend(*Learnt(events, config)).ranker_steps(), 0);

  config.blend_context_steps = true;
  const auto learnt = Learnt(events, config);
  const int64_t cold = RankableEvents(events, config.history_recent, config.blend_cold_events);
  ASSERT_GT(cold, 2000);
  ASSERT_LT(cold, 4000);
  EXPECT_EQ(Blend(*learnt).ranker_steps(), cold);

  // With blend.learn_repeats it also steps on a cold user's return to an item of theirs.
  config.blend_learn_repeats = true;
  int64_t with_repeats = 0;
  absl::flat_hash_map<std::string, int> earlier;
  for (const stream::Event& e : events) {
    const int n = earlier[e.user]++;
    with_repeats += n > 0 && n < config.blend_cold_events;
  }
  ASSERT_GT(with_repeats, cold);
  EXPECT_EQ(Blend(*Learnt(events, config)).ranker_steps(), with_repeats);
}

// ease reads a user's history as a long-term profile: for users with fewer than blend.cold_events
// earlier events it weighs 0 and learns nothing from their events (blend.ease_for_cold_users
// off). Here every event is a cold user's, so its weights keep their initial values; with the key
// on they move.
TEST_F(BlendTest, EaseLearnsFromEstablishedUsersOnly) {
  config::Config config;
  config.blend_features = "cooc,popularity,ease";
  config.blend_ease_items = 64;
  config.blend_ease_refit = 500;
  // Each user's first blend.cold_events events only: every event learnt is a cold user's.
  std::vector<stream::Event> events;
  absl::flat_hash_map<std::string, int> per_user;
  for (const stream::Event& e : MakeStream(0.5, 5, 8000)) {
    if (per_user[e.user]++ < config.blend_cold_events) events.push_back(e);
  }
  ASSERT_GT(events.size(), 3000u);
  const auto cold = Learnt(events, config);
  const BlendModel& blend = Blend(*cold);
  const auto ease_weights = [](const BlendModel& b) {
    std::vector<float> out;
    const size_t nf = b.features().size();
    for (size_t s = 0; s < b.weights().size(); s += nf) out.push_back(b.weights()[s + 2]);
    return out;
  };
  ASSERT_EQ(blend.features()[2], BlendModel::kEase);
  ASSERT_GT(blend.ranker_steps(), 1000);
  EXPECT_GT(blend.fits(), 0);
  config::Config frozen = config;
  frozen.blend_lr = 0;  // the initial weights
  EXPECT_EQ(ease_weights(blend), ease_weights(Blend(*Learnt(events, frozen))));

  config.blend_ease_for_cold_users = true;
  const auto all = Learnt(events, config);
  EXPECT_NE(ease_weights(Blend(*all)), ease_weights(blend));
  EXPECT_NE(ease_weights(Blend(*all))[1], 0.0f);  // the cold set's ease weight moved
}

// With blend.cold_events a second weight set, learnt from the events of users with fewer earlier
// events, is added to the shared one for those users: it starts at zero and moves.
TEST_F(BlendTest, ColdUsersLearnWeightsOfTheirOwn) {
  config::Config config;
  config.blend_session_start = false;
  config.blend_cold_events = 0;
  const auto one_set = Learnt(MakeStream(0.5, 5, 8000), config);
  ASSERT_EQ(Blend(*one_set).weights().size(), Blend(*one_set).features().size());
  config.blend_cold_events = 10;
  const auto two_sets = Learnt(MakeStream(0.5, 5, 8000), config);
  const BlendModel& blend = Blend(*two_sets);
  const size_t nf = blend.features().size();
  ASSERT_EQ(blend.weights().size(), 2 * nf);
  float moved = 0;
  for (size_t f = nf; f < 2 * nf; ++f) moved += std::abs(blend.weights()[f]);
  EXPECT_GT(moved, 0.05f);
  // The shared set is learnt from every event, the cold set from cold users' events only.
  EXPECT_NE(std::vector<float>(blend.weights().begin(), blend.weights().begin() + nf),
            std::vector<float>(blend.weights().begin() + nf, blend.weights().end()));
}

// With blend.session_start a further weight set, learnt from the events that start a session (a
// user's latest event more than cooc.session_gap_s before), is added to the shared one for such
// users: it starts at zero and moves. It follows the cold set when both are on.
TEST_F(BlendTest, UsersStartingASessionLearnWeightsOfTheirOwn) {
  // One second apart; then a 4-hour pause every 2,000 events, after which each user's first event
  // starts a session.
  std::vector<stream::Event> unpaused = MakeStream(0.5, 5, 8000);
  const int64_t t0 = 1'700'000'000'000;
  for (size_t e = 0; e < unpaused.size(); ++e)
    unpaused[e].ts_ms = t0 + static_cast<int64_t>(e) * 1000;
  std::vector<stream::Event> paused = unpaused;
  for (size_t e = 0; e < paused.size(); ++e) {
    paused[e].ts_ms += static_cast<int64_t>(e / 2000) * 4 * 3'600'000;
  }
  // The sum of |w| over the session-start set, which begins at `start`.
  const auto moved = [](const BlendModel& blend, size_t start) {
    float sum = 0;
    for (size_t f = start; f < start + blend.features().size(); ++f) {
      sum += std::abs(blend.weights()[f]);
    }
    return sum;
  };
  config::Config config;
  config.blend_session_start = true;
  float paused_moved = 0;
  for (const int cold_events : {0, 10}) {
    config.blend_cold_events = cold_events;
    const auto learner = Learnt(paused, config);
    const BlendModel& blend = Blend(*learner);
    const size_t nf = blend.features().size();
    const size_t start = cold_events > 0 ? 2 * nf : nf;
    ASSERT_EQ(blend.weights().size(), start + nf) << cold_events;
    EXPECT_GT(moved(blend, start), 0.05f) << cold_events;
    EXPECT_NE(std::vector<float>(blend.weights().begin(), blend.weights().begin() + nf),
              std::vector<float>(blend.weights().begin() + start, blend.weights().end()));
    if (cold_events == 0) paused_moved = moved(blend, start);
  }
  // Without pauses no event after a user's first starts a session, so the set moves far less.
  config.blend_cold_events = 0;
  const auto learner = Learnt(unpaused, config);
  EXPECT_LT(moved(Blend(*learner), Blend(*learner).features().size()), paused_moved);
}

// The profile component pairs the items of a user's recent history whatever the time between
// them: people who took x took y two days later. cooc's sessions keep that pair apart.
TEST_F(BlendTest, ProfilePairsItemsAcrossSessions) {
  const int64_t t0 = 1'700'000'000'000;
  std::vector<stream::Event> events;
  const auto add = [&](std::string user, std::string item, int64_t ts) {
    stream::Event e;
    e.user = std::move(user);
    e.item = std::move(item);
    e.ts_ms = ts;
    events.push_back(std::move(e));
  };
  for (int u = 0; u < 20; ++u) {
    add(absl::StrCat("u", u), "x", t0 + u * 1000);
    // Items everyone takes within the same session as x, so that they outrank y unless the
    // pairs across sessions count.
    add(absl::StrCat("u", u), absl::StrCat("filler", u % 4), t0 + u * 1000 + 10);
    add(absl::StrCat("u", u), "y", t0 + 2 * 86'400'000 + u * 1000);
  }
  add("q", "x", t0 + 3 * 86'400'000);
  for (const char* features : {"profile", "history"}) {
    config::Config config;
    config.blend_features = features;
    const auto learner = Learnt(events, config);
    Recommendation top;
    ASSERT_TRUE(learner->Recommend("q", 1, true, &top).ok());
    ASSERT_EQ(top.items.size(), 1u);
    const bool y = top.items[0].item == learner->items().Find("y");
    EXPECT_EQ(y, std::string(features) == "profile") << features;
  }
}

// Topics is fitted to a table of its own (blend.topics_user_exponent, blend.topics_window,
// blend.topics_unit_weights). Many light users take three items of group a or of group b; two
// heavy users, with long histories, each take half of a's and half of b's items, a and b in turn.
// Where the heavy users' pairs outweigh the light users', they decide the groups, and a user who
// took a0 is offered b's items: counted as the profile table counts them (every pair within 128
// items, weighing the event's weight), or with the heavy users' events weighing 8. Weighed 1/n
// each (exponent 1), within 2 items, or counting 1 whatever the event's weight, the light users
// decide: a's items only.
TEST_F(BlendTest, TopicsGroupItemsByItsOwnTable) {
  struct Case {
    float exponent;
    int window;  // 0: history.recent
    bool unit;
    float heavy_weight;
    bool groups_of_heavy_users;
  };
  for (const Case c :
       {Case{0, 0, false, 1, true}, Case{1, 0, false, 1, false}, Case{0, 2, false, 1, false},
        Case{0, 2, false, 8, true}, Case{0, 2, true, 8, false}}) {
    const std::string what =
        absl::StrCat("exponent ", c.exponent, ", window ", c.window, ", unit weights ", c.unit,
                     ", heavy users' weight ", c.heavy_weight);
    const int64_t t0 = 1'700'000'000'000;
    std::vector<stream::Event> events;
    const auto add = [&](std::string user, std::string item, float weight) {
      stream::Event e;
      e.user = std::move(user);
      e.item = std::move(item);
      e.weight = weight;
      e.ts_ms = t0 + static_cast<int64_t>(events.size()) * 1000;
      events.push_back(std::move(e));
    };
    for (int step = 0; step < 60; ++step) {
      for (int h = 0; h < 2; ++h) {
        add(absl::StrCat("heavy", h), absl::StrCat(step % 2 == 0 ? "a" : "b", 3 * h + step % 3),
            c.heavy_weight);
      }
    }
    for (int u = 0; u < 300; ++u) {
      for (int j = 0; j < 3; ++j) {
        add(absl::StrCat("light", u), absl::StrCat(u % 2 == 0 ? "a" : "b", (u + j) % 6), 1);
      }
    }
    add("q", "a0", 1);
    config::Config config;
    config.blend_features = "topics";
    config.blend_topics = 2;
    config.blend_topics_prior = 0;  // the groups alone
    config.blend_ease_refit = 1;
    config.blend_topics_user_exponent = c.exponent;
    config.blend_topics_window = c.window > 0 ? c.window : config.history_recent;
    config.blend_topics_unit_weights = c.unit;
    ASSERT_EQ(config::BlendTopicsOwnTable(config), c.exponent > 0 || c.window > 0 || c.unit)
        << what;
    const auto learner = Learnt(events, config);
    Recommendation top;
    ASSERT_TRUE(learner->Recommend("q", 5, true, &top).ok());
    ASSERT_EQ(top.items.size(), 5u);
    int b = 0;
    for (const auto& item : top.items) {
      b += learner->items().ExternalId(item.item)[0] == 'b' ? 1 : 0;
    }
    if (c.groups_of_heavy_users) {
      EXPECT_GT(b, 0) << what;
    } else {
      EXPECT_EQ(b, 0) << what;
    }
  }
}

// The ials component is the ials model: alone in the blend (no ranker steps with one feature, a
// positive weight) it ranks every user's items as the ials model learnt from the same stream does.
TEST_F(BlendTest, TheIalsComponentRanksAsTheIalsModel) {
  config::Config config;
  config.dim = 16;
  config.blend_features = "ials";
  const auto events = MakeStream(0.3, 5, 5000);
  const auto blend = Learnt(events, config);
  auto ials = Learner::Create("ials", config, backend_.get());
  ASSERT_TRUE(ials.ok());
  (*ials)->ApplyBatch(events);
  int compared = 0;
  for (int u = 0; u < 500; u += 11) {
    const std::string user = absl::StrCat("u", u);
    Recommendation a, b;
    if (!blend->Recommend(user, 10, true, &a).ok()) continue;
    ASSERT_TRUE((*ials)->Recommend(user, 10, true, &b).ok());
    ASSERT_EQ(a.items.size(), b.items.size());
    for (size_t r = 0; r < a.items.size(); ++r) EXPECT_EQ(a.items[r].item, b.items[r].item) << user;
    ++compared;
  }
  EXPECT_GT(compared, 20);
}

class BlendRoundTripTest : public BlendTest, public ::testing::WithParamInterface<int> {};

// 0: the defaults; 1: three weight sets, sampled steps, log sparse scores and every component.
INSTANTIATE_TEST_SUITE_P(Configurations, BlendRoundTripTest, ::testing::Values(0, 1));

TEST_P(BlendRoundTripTest, RowsRoundTripToIdenticalRecommendations) {
  config::Config config;
  // ease is fitted again when loaded, from the loaded table: fitted after every event, the
  // learner's latest fit is of the same table.
  config.blend_ease_items = 64;
  config.blend_ease_refit = 1;
  config.blend_topics_items = 32;
  config.blend_topics = 4;
  if (GetParam() == 1) {
    config.blend_cold_events = 5;
    config.blend_sample = 32;
    config.blend_train_cost = 32;
    config.blend_sparse_transform = "log";
    config.blend_session_start = true;
    config.blend_features =
        "bpr,cooc,history,transitions,popularity,trending,last,long_term,profile,ials,ease,topics";
  }
  const auto original = Learnt(MakeStream(0.5, 9, 8000), config);
  auto loaded = Learner::Create("blend", config, backend_.get());
  ASSERT_TRUE(loaded.ok());
  std::string globals;
  original->EncodeGlobals(&globals);
  ASSERT_TRUE((*loaded)->BeginLoad(globals).ok());
  for (int32_t row = 0; row < original->users().size(); ++row) {
    std::string user, history;
    original->EncodeUser(row, &user);
    original->EncodeHistory(row, &history);
    ASSERT_TRUE((*loaded)->LoadUser(row, user).ok());
    ASSERT_TRUE((*loaded)->LoadHistory(row, history).ok());
  }
  for (int32_t row = 0; row < original->items().size(); ++row) {
    std::string item;
    original->EncodeItem(row, &item);
    ASSERT_TRUE((*loaded)->LoadItem(row, item).ok()) << row;
  }
  ASSERT_TRUE((*loaded)->FinishLoad().ok());
  EXPECT_EQ(Blend(**loaded).weights(), Blend(*original).weights());
  EXPECT_EQ(Blend(**loaded).ranker_steps(), Blend(*original).ranker_steps());
  for (int u = 0; u < 500; u += 7) {
    const std::string user = absl::StrCat("u", u);
    Recommendation a, b;
    ASSERT_TRUE(original->Recommend(user, 10, true, &a).ok());
    ASSERT_TRUE((*loaded)->Recommend(user, 10, true, &b).ok());
    EXPECT_EQ(a.items, b.items) << user;
  }
  // A truncated row is refused.
  std::string item;
  original->EncodeItem(0, &item);
  item.pop_back();
  EXPECT_FALSE((*loaded)->LoadItem(0, item).ok());
}

TEST_F(BlendTest, UnknownFeaturesAreRefused) {
  config::Config config;
  config.blend_features = "bpr,nope";
  EXPECT_EQ(Learner::Create("blend", config, backend_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.blend_features = "cooc,cooc";
  EXPECT_EQ(Learner::Create("blend", config, backend_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.blend_features = "cooc,transitions";
  EXPECT_TRUE(Learner::Create("blend", config, backend_.get()).ok());
  config.blend_features = "last,long_term";
  EXPECT_TRUE(Learner::Create("blend", config, backend_.get()).ok());
  // The error names every valid component.
  config.blend_features = "nope";
  const std::string message(Learner::Create("blend", config, backend_.get()).status().message());
  for (const char* name :
       {"bpr", "transitions", "long_term", "profile", "ials", "ease", "topics"}) {
    EXPECT_NE(message.find(name), std::string::npos) << message;
  }
}

// Two users each make two events: one a few seconds apart, one two hours apart. With a one-hour
// session gap only the first pair co-occurs; without sessions both do.
TEST_F(BlendTest, CoocPairsOnlyEventsOfOneSession) {
  for (const double gap_s : {3600.0, 0.0}) {
    config::Config config;
    config.cooc_session_gap_s = gap_s;
    auto learner = Learner::Create("cooc", config, backend_.get());
    ASSERT_TRUE(learner.ok());
    const int64_t t0 = 1'700'000'000'000;
    for (const auto& [user, item, ts] :
         {std::tuple{"a", "i1", t0}, std::tuple{"a", "i2", t0 + 5'000}, std::tuple{"b", "i3", t0},
          std::tuple{"b", "i4", t0 + 2 * 3'600'000}}) {
      stream::Event e;
      e.user = user;
      e.item = item;
      e.ts_ms = ts;
      (*learner)->Apply(e);
    }
    const auto& cooc = dynamic_cast<const CoocModel&>((*learner)->scoring());
    EXPECT_EQ(cooc.stored_pairs(), gap_s > 0 ? 2 : 4) << "gap " << gap_s;  // both directions
  }
}

}  // namespace
}  // namespace freshet::learner
