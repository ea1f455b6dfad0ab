#include "stream/synthetic/synthetic_stream.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "stream/event.h"
#include "stream/synthetic/synthetic_ceiling.h"

namespace freshet::stream {
namespace {

using ::testing::HasSubstr;

SyntheticStream MakeStream(const SyntheticStreamOptions& options) {
  absl::StatusOr<SyntheticStream> stream = SyntheticStream::Create(options);
  EXPECT_TRUE(stream.ok()) << stream.status();
  return *std::move(stream);
}

std::vector<SyntheticEventIds> Generate(const SyntheticStreamOptions& options, int64_t n) {
  SyntheticStream stream = MakeStream(options);
  std::vector<SyntheticEventIds> out(n);
  for (SyntheticEventIds& e : out) stream.NextIds(&e);
  return out;
}

// Share of all events taken by the most frequent `top` keys.
double TopShare(std::vector<int64_t> counts, size_t top) {
  std::sort(counts.begin(), counts.end(), std::greater<>());
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  const int64_t head = std::accumulate(counts.begin(), counts.begin() + top, int64_t{0});
  return static_cast<double>(head) / static_cast<double>(total);
}

// A fresh path under the test temp directory; removed by the destructor.
class TempPath {
 public:
  explicit TempPath(const std::string& name)
      : path_(absl::StrCat(::testing::TempDir(), "/freshet_synth_", ::getpid(), "_", name)) {
    ::unlink(path_.c_str());
  }
  ~TempPath() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadGzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) return "<gzopen failed>";
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof(buf))) > 0) out.append(buf, n);
  const bool ok = n == 0;
  gzclose(gz);
  return ok ? out : "<gzread failed>";
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST(SyntheticStreamTest, SameSeedSameEventsOtherSeedOtherEvents) {
  SyntheticStreamOptions options;
  options.seed = 7;
  SyntheticStream a = MakeStream(options);
  SyntheticStream b = MakeStream(options);
  options.seed = 8;
  SyntheticStream c = MakeStream(options);
  Event ea, eb, ec;
  int differ = 0;
  constexpr int kN = 20'000;
  for (int i = 0; i < kN; ++i) {
    a.Next(&ea);
    b.Next(&eb);
    c.Next(&ec);
    ASSERT_EQ(ea.user, eb.user) << i;
    ASSERT_EQ(ea.item, eb.item) << i;
    ASSERT_EQ(ea.type, eb.type) << i;
    ASSERT_EQ(ea.weight, eb.weight) << i;
    ASSERT_EQ(ea.ts_ms, eb.ts_ms) << i;
    if (ea.user != ec.user || ea.item != ec.item) ++differ;
  }
  EXPECT_GT(differ, kN * 9 / 10);
  // The planted structure is seeded too.
  int same_topic = 0;
  for (int32_t i = 0; i < options.items; ++i) same_topic += a.TopicOfItem(i) == b.TopicOfItem(i);
  EXPECT_EQ(same_topic, options.items);
}

TEST(SyntheticStreamTest, NextAndNextIdsAgreeAndFormatIds) {
  SyntheticStreamOptions options;
  SyntheticStream a = MakeStream(options);
  SyntheticStream b = MakeStream(options);
  Event e;
  SyntheticEventIds ids;
  for (int64_t i = 0; i < 1000; ++i) {
    a.Next(&e);
    b.NextIds(&ids);
    ASSERT_EQ(e.user, SyntheticStream::UserId(ids.user));
    ASSERT_EQ(e.item, SyntheticStream::ItemId(ids.item));
    ASSERT_EQ(e.type, options.event_types[ids.type].name);
    ASSERT_EQ(e.weight, options.event_types[ids.type].weight);
    ASSERT_EQ(e.ts_ms, ids.ts_ms);
    ASSERT_EQ(e.position.offset, i);
    ASSERT_GE(ids.user, 0);
    ASSERT_LT(ids.user, options.users);
    ASSERT_GE(ids.item, 0);
    ASSERT_LT(ids.item, options.items);
  }
  EXPECT_EQ(SyntheticStream::UserId(42), "u42");
  EXPECT_EQ(SyntheticStream::ItemId(9), "i9");
  EXPECT_EQ(a.emitted(), 1000);
}

TEST(SyntheticStreamTest, DoneAfterConfiguredEvents) {
  SyntheticStreamOptions options;
  options.events = 3;
  SyntheticStream s = MakeStream(options);
  Event e;
  int n = 0;
  while (!s.Done()) {
    s.Next(&e);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(SyntheticStreamTest, ItemPopularityIsHeavyTailed) {
  SyntheticStreamOptions options;
  options.items = 10'000;
  constexpr int64_t kN = 500'000;
  std::vector<int64_t> counts(options.items);
  for (const SyntheticEventIds& e : Generate(options, kN)) ++counts[e.item];
  // The top 1% of items get far more than 1% of events.
  EXPECT_GT(TopShare(counts, options.items / 100), 0.15);

  // Control: with a flat law and no sequences the same statistic is close to 1%, so the check
  // above measures the power law rather than sampling noise.
  options.popularity_exponent = 0;
  options.sequential_probability = 0;
  std::fill(counts.begin(), counts.end(), 0);
  for (const SyntheticEventIds& e : Generate(options, kN)) ++counts[e.item];
  EXPECT_LT(TopShare(counts, options.items / 100), 0.03);
}

TEST(SyntheticStreamTest, UserActivityIsHeavyTailed) {
  SyntheticStreamOptions options;
  options.users = 10'000;
  options.user_activity_exponent = 1.0;
  std::vector<int64_t> counts(options.users);
  for (const SyntheticEventIds& e : Generate(options, 300'000)) ++counts[e.user];
  EXPECT_GT(TopShare(counts, options.users / 100), 0.3);
}

TEST(SyntheticStreamTest, UsersConcentrateOnTheirTopics) {
  SyntheticStreamOptions options;
  options.drift_rate = 0;
  options.users = 2'000;
  options.topics = 32;
  options.user_topics = 3;
  options.topic_concentration = 0.9;
  SyntheticStream stream = MakeStream(options);
  std::vector<std::vector<int32_t>> topics_before(options.users);
  for (int32_t u = 0; u < options.users; ++u) {
    auto t = stream.PreferredTopicsOf(u);
    topics_before[u].assign(t.begin(), t.end());
    std::vector<int32_t> sorted(t.begin(), t.end());
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "topics not distinct";
  }
  std::vector<absl::flat_hash_map<int32_t, int64_t>> per_user(options.users);
  int64_t in_preferred = 0;
  constexpr int64_t kN = 400'000;
  SyntheticEventIds e;
  for (int64_t i = 0; i < kN; ++i) {
    stream.NextIds(&e);
    const int32_t topic = stream.TopicOfItem(e.item);
    ++per_user[e.user][topic];
    const auto& pref = topics_before[e.user];
    in_preferred += std::find(pref.begin(), pref.end(), topic) != pref.end();
  }
  // Without drift the tastes never move.
  for (int32_t u = 0; u < options.users; ++u) {
    auto t = stream.PreferredTopicsOf(u);
    ASSERT_EQ(std::vector<int32_t>(t.begin(), t.end()), topics_before[u]);
  }
  // At least topic_concentration of events come from preferred topics (successors stay in their
  // topic; the rest is a popularity pick that sometimes lands there too).
  EXPECT_GT(static_cast<double>(in_preferred) / kN, 0.89);

  // Most of each (active enough) user's events fall in their top 2 topics.
  double share_sum = 0;
  int measured = 0;
  for (const auto& counts : per_user) {
    std::vector<int64_t> c;
    for (const auto& [topic, n] : counts) c.push_back(n);
    const int64_t total = std::accumulate(c.begin(), c.end(), int64_t{0});
    if (total < 50) continue;
    share_sum += TopShare(c, std::min<size_t>(2, c.size()));
    ++measured;
  }
  ASSERT_GT(measured, 500);
  EXPECT_GT(share_sum / measured, 0.75);
}

TEST(SyntheticStreamTest, DriftMovesTastes) {
  SyntheticStreamOptions options;
  options.users = 100;
  options.drift_rate = 0.05;
  SyntheticStream stream = MakeStream(options);
  std::vector<std::vector<int32_t>> before(options.users);
  for (int32_t u = 0; u < options.users; ++u) {
    auto t = stream.PreferredTopicsOf(u);
    before[u].assign(t.begin(), t.end());
  }
  SyntheticEventIds e;
  for (int i = 0; i < 100'000; ++i) stream.NextIds(&e);
  int changed = 0;
  for (int32_t u = 0; u < options.users; ++u) {
    auto t = stream.PreferredTopicsOf(u);
    changed += std::vector<int32_t>(t.begin(), t.end()) != before[u];
    std::vector<int32_t> sorted(t.begin(), t.end());
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  }
  // Every user has ~1000 events here, so ~50 drift steps each.
  EXPECT_GT(changed, 95);
}

TEST(SyntheticStreamTest, SuccessorsArePlantedInTheSameTopic) {
  SyntheticStreamOptions options;
  options.items = 5'000;
  options.max_successors = 3;
  SyntheticStream stream = MakeStream(options);
  std::vector<int> by_count(4);
  for (int32_t i = 0; i < options.items; ++i) {
    auto succ = stream.SuccessorsOf(i);
    ASSERT_GE(succ.size(), 1u);
    ASSERT_LE(succ.size(), 3u);
    ++by_count[succ.size()];
    std::vector<int32_t> sorted(succ.begin(), succ.end());
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
    for (int32_t s : succ) {
      ASSERT_NE(s, i);
      ASSERT_EQ(stream.TopicOfItem(s), stream.TopicOfItem(i));
    }
  }
  for (int c = 1; c <= 3; ++c) EXPECT_GT(by_count[c], options.items / 5) << c;
  // Topics partition the catalog into near-equal slices.
  int64_t total = 0;
  for (int32_t t = 0; t < options.topics; ++t) {
    auto items = stream.ItemsOfTopic(t);
    total += items.size();
    EXPECT_GE(items.size(), static_cast<size_t>(options.items / options.topics));
    EXPECT_LE(items.size(), static_cast<size_t>(options.items / options.topics + 1));
    for (int32_t i : items) EXPECT_EQ(stream.TopicOfItem(i), t);
  }
  EXPECT_EQ(total, options.items);
}

TEST(SyntheticStreamTest, SuccessorsInTinyTopics) {
  // Topics of 1, 2 and 3 items: fewer candidates than max_successors.
  for (int32_t items : {4, 8, 12}) {
    SyntheticStreamOptions options;
    options.items = items;
    options.topics = 4;
    options.user_topics = 2;
    options.max_successors = 3;
    SyntheticStream stream = MakeStream(options);
    for (int32_t i = 0; i < items; ++i) {
      auto succ = stream.SuccessorsOf(i);
      const int32_t topic_size =
          static_cast<int32_t>(stream.ItemsOfTopic(stream.TopicOfItem(i)).size());
      ASSERT_GE(succ.size(), 1u);
      ASSERT_LE(static_cast<int32_t>(succ.size()), std::max(1, topic_size - 1));
      for (int32_t s : succ) {
        EXPECT_EQ(stream.TopicOfItem(s), stream.TopicOfItem(i));
        if (topic_size > 1) {
          EXPECT_NE(s, i) << "items=" << items;
        }
      }
    }
    Event e;
    for (int n = 0; n < 1000; ++n) stream.Next(&e);  // generates without tripping a check
  }
}

// Fraction of consecutive same-user pairs (prev, next) where next is a planted successor of prev.
double SuccessorTransitionRate(const SyntheticStreamOptions& options, int64_t n) {
  SyntheticStream stream = MakeStream(options);
  std::vector<int32_t> last(options.users, -1);
  int64_t pairs = 0;
  int64_t hits = 0;
  SyntheticEventIds e;
  for (int64_t i = 0; i < n; ++i) {
    stream.NextIds(&e);
    if (last[e.user] >= 0) {
      ++pairs;
      auto succ = stream.SuccessorsOf(last[e.user]);
      hits += std::find(succ.begin(), succ.end(), e.item) != succ.end();
    }
    last[e.user] = e.item;
  }
  return static_cast<double>(hits) / static_cast<double>(pairs);
}

TEST(SyntheticStreamTest, SequentialProbabilityIsPlanted) {
  SyntheticStreamOptions options;
  options.items = 20'000;
  options.topics = 20;
  for (double p : {0.0, 0.3, 0.6}) {
    options.sequential_probability = p;
    const double rate = SuccessorTransitionRate(options, 300'000);
    // A non-sequential pick lands on a successor only by chance (a few in a thousand here).
    EXPECT_GT(rate, p - 0.01) << "p=" << p;
    EXPECT_LT(rate, p + 0.02) << "p=" << p;
  }
  options.sequential_probability = 1.0;
  EXPECT_EQ(SuccessorTransitionRate(options, 50'000), 1.0);
}

// The distribution NextItemDistribution gives is the one the events are drawn from: summed over
// the events, it predicts how often each item comes, topic weights, popularity, successors and
// drift included.
TEST(SyntheticStreamTest, NextItemDistributionIsWhatEventsAreDrawnFrom) {
  SyntheticStreamOptions options;
  options.users = 3;  // few users, so each one's own topic weights show in the counts
  options.items = 60;
  options.topics = 6;
  options.user_topics = 2;
  options.sequential_probability = 0.3;
  options.drift_rate = 0.001;
  SyntheticStream stream = MakeStream(options);
  std::vector<int32_t> last(options.users, -1);
  std::vector<double> p(options.items), expected(options.items, 0.0);
  std::vector<int64_t> observed(options.items, 0);
  SyntheticEventIds e;
  constexpr int64_t kEvents = 200'000;
  for (int64_t n = 0; n < kEvents; ++n) {
    stream.NextIds(&e);
    stream.NextItemDistribution(e.user, last[e.user], absl::MakeSpan(p));
    ASSERT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-9) << "event " << n;
    ASSERT_GE(*std::min_element(p.begin(), p.end()), 0.0);
    for (int32_t i = 0; i < options.items; ++i) expected[i] += p[i];
    ++observed[e.item];
    last[e.user] = e.item;
  }
  // Each draw is independent given the state, so a count is off by a few standard deviations at
  // most (variance at most the expected count).
  for (int32_t i = 0; i < options.items; ++i) {
    EXPECT_NEAR(static_cast<double>(observed[i]), expected[i], 5 * std::sqrt(expected[i]) + 5)
        << "item " << i;
  }
}

// With every next item a user's previous item's only successor, the ceiling ranks it first: every
// ranked event after a user's first few is a hit at rank 1. A user's first item is drawn by taste
// and popularity, so not every early event is.
TEST(SyntheticCeilingTest, RanksACertainSuccessorFirst) {
  SyntheticStreamOptions options;
  options.events = 20'000;
  options.users = 200;
  options.items = 2'000;
  options.topics = 4;
  options.sequential_probability = 1.0;
  options.max_successors = 1;
  absl::StatusOr<SyntheticCeiling> ceiling = MeasureSyntheticCeiling(options, 10, 5);
  ASSERT_TRUE(ceiling.ok()) << ceiling.status();
  EXPECT_EQ(ceiling->events, 20'000);
  ASSERT_GT(ceiling->later_evaluated, 1'000);
  EXPECT_EQ(ceiling->later_recall, 1.0);
  EXPECT_LT(ceiling->early_recall, 1.0);
  EXPECT_EQ(ceiling->evaluated, ceiling->early_evaluated + ceiling->later_evaluated);
  // A hit at rank 1 gains 1: NDCG is at least the share of those later hits.
  EXPECT_GE(ceiling->ndcg, static_cast<double>(ceiling->later_evaluated) / ceiling->evaluated);
}

// Without successors or tastes (one topic, sequential 0), the distribution is popularity: the
// ceiling is what ranking by the planted popularity gives, which the test computes on its own.
TEST(SyntheticCeilingTest, WithoutTastesOrSuccessorsIsPopularity) {
  SyntheticStreamOptions options;
  options.events = 5'000;
  options.users = 300;
  options.items = 400;
  options.topics = 1;
  options.user_topics = 1;
  options.sequential_probability = 0.0;
  absl::StatusOr<SyntheticCeiling> ceiling = MeasureSyntheticCeiling(options, 5, 5);
  ASSERT_TRUE(ceiling.ok()) << ceiling.status();
  SyntheticStream stream = MakeStream(options);
  const absl::Span<const int32_t> by_popularity = stream.ItemsOfTopic(0);  // most popular first
  std::vector<char> in_catalog(options.items, 0);
  std::vector<std::vector<int32_t>> had(options.users);
  int64_t evaluated = 0, hits = 0;
  SyntheticEventIds e;
  for (int64_t n = 0; n < options.events; ++n) {
    stream.NextIds(&e);
    std::vector<int32_t>& mine = had[e.user];
    const bool had_it = std::find(mine.begin(), mine.end(), e.item) != mine.end();
    if (in_catalog[e.item] && !had_it) {
      ++evaluated;
      int taken = 0;
      for (int32_t item : by_popularity) {
        if (!in_catalog[item] || std::find(mine.begin(), mine.end(), item) != mine.end()) continue;
        if (item == e.item) ++hits;
        if (++taken == 5) break;
      }
    }
    in_catalog[e.item] = 1;
    if (!had_it) mine.push_back(e.item);
  }
  EXPECT_EQ(ceiling->evaluated, evaluated);
  EXPECT_DOUBLE_EQ(ceiling->recall, static_cast<double>(hits) / static_cast<double>(evaluated));
  EXPECT_GT(hits, 0);
}

TEST(SyntheticCeilingTest, RejectsBadArguments) {
  SyntheticStreamOptions options;
  options.events = 10;
  EXPECT_EQ(MeasureSyntheticCeiling(options, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.items = 0;
  EXPECT_EQ(MeasureSyntheticCeiling(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SyntheticStreamTest, TypeFrequenciesAndWeightsMatchOptions) {
  SyntheticStreamOptions options;
  options.event_types = {{"a", 0.5, 1.5f}, {"b", 0.25, 3.0f}, {"c", 0.25, 0.0f}};
  for (const auto& types : {DefaultSyntheticEventTypes(), options.event_types}) {
    options.event_types = types;
    SyntheticStream stream = MakeStream(options);
    absl::flat_hash_map<std::string, int64_t> counts;
    constexpr int64_t kN = 400'000;
    Event e;
    for (int64_t i = 0; i < kN; ++i) {
      stream.Next(&e);
      ++counts[e.type];
      const auto it = std::find_if(types.begin(), types.end(),
                                   [&](const SyntheticEventType& t) { return t.name == e.type; });
      ASSERT_NE(it, types.end()) << e.type;
      ASSERT_EQ(e.weight, it->weight);
    }
    for (const SyntheticEventType& t : types) {
      EXPECT_NEAR(static_cast<double>(counts[t.name]) / kN, t.probability, 0.005) << t.name;
    }
  }
  const auto defaults = DefaultSyntheticEventTypes();
  ASSERT_EQ(defaults.size(), 4u);
  EXPECT_EQ(defaults[0].name, "view");
  EXPECT_EQ(defaults[3].name, "purchase");
  EXPECT_EQ(defaults[3].weight, 8.0f);
}

TEST(SyntheticStreamTest, TimestampsAreNonDecreasingWithTies) {
  SyntheticStreamOptions options;
  options.start_ts_ms = 1'700'000'000'000;
  options.events_per_second = 500;
  constexpr int64_t kN = 200'000;
  const std::vector<SyntheticEventIds> events = Generate(options, kN);
  EXPECT_EQ(events.front().ts_ms, options.start_ts_ms);
  int64_t ties = 0;
  for (size_t i = 1; i < events.size(); ++i) {
    ASSERT_GE(events[i].ts_ms, events[i - 1].ts_ms) << i;
    ties += events[i].ts_ms == events[i - 1].ts_ms;
  }
  EXPECT_GT(ties, 0);
  EXPECT_LT(ties, kN);
  // Simulated time advances at the configured rate: kN events span about kN / 500 seconds.
  const double span_s = (events.back().ts_ms - events.front().ts_ms) / 1000.0;
  EXPECT_NEAR(span_s, kN / options.events_per_second, 0.02 * kN / options.events_per_second);
}

TEST(SyntheticStreamTest, InvalidOptionsAreRejected) {
  struct Case {
    const char* field;
    std::function<void(SyntheticStreamOptions&)> mutate;
  };
  const std::vector<Case> cases = {
      {"events", [](auto& o) { o.events = -1; }},
      {"users", [](auto& o) { o.users = 0; }},
      {"topics", [](auto& o) { o.topics = 0; }},
      {"items", [](auto& o) { o.items = 10, o.topics = 11; }},
      {"popularity_exponent", [](auto& o) { o.popularity_exponent = -0.5; }},
      {"popularity_exponent", [](auto& o) { o.popularity_exponent = NAN; }},
      {"user_activity_exponent", [](auto& o) { o.user_activity_exponent = INFINITY; }},
      {"user_topics", [](auto& o) { o.user_topics = 0; }},
      {"user_topics", [](auto& o) { o.topics = 2, o.user_topics = 3; }},
      {"topic_concentration", [](auto& o) { o.topic_concentration = 1.5; }},
      {"drift_rate", [](auto& o) { o.drift_rate = -0.1; }},
      {"sequential_probability", [](auto& o) { o.sequential_probability = NAN; }},
      {"max_successors", [](auto& o) { o.max_successors = 0; }},
      {"event_types", [](auto& o) { o.event_types.clear(); }},
      {"sum to 1", [](auto& o) { o.event_types[0].probability = 0.5; }},
      {"probability",
       [](auto& o) {
         o.event_types = {{"x", 1.2, 1}, {"y", -0.2, 1}};
       }},
      {"twice",
       [](auto& o) {
         o.event_types = {{"x", 0.5, 1}, {"x", 0.5, 1}};
       }},
      {"name",
       [](auto& o) {
         o.event_types = {{"bad\"name", 1.0, 1}};
       }},
      {"name",
       [](auto& o) {
         o.event_types = {{"", 1.0, 1}};
       }},
      {"weight",
       [](auto& o) {
         o.event_types = {{"x", 1.0, -1}};
       }},
      {"start_ts_ms", [](auto& o) { o.start_ts_ms = -5; }},
      {"events_per_second", [](auto& o) { o.events_per_second = 0; }},
  };
  for (const Case& c : cases) {
    SyntheticStreamOptions options;
    c.mutate(options);
    const absl::Status status = SyntheticStream::Create(options).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
  }
  // Edge values that are valid.
  SyntheticStreamOptions options;
  options.users = 1;
  options.items = 1;
  options.topics = 1;
  options.user_topics = 1;
  options.drift_rate = 1;
  options.sequential_probability = 1;
  options.event_types = {{"only", 1.0, 1}};
  SyntheticStream stream = MakeStream(options);
  Event e;
  stream.Next(&e);
  stream.Next(&e);
  EXPECT_EQ(e.user, "u0");
  EXPECT_EQ(e.item, "i0");
}

TEST(WriteSyntheticStreamTest, WritesOneJsonLinePerEvent) {
  SyntheticStreamOptions options;
  options.events = 250'000;
  TempPath file("plain.jsonl");
  std::vector<int64_t> progress;
  ASSERT_TRUE(
      WriteSyntheticStream(options, file.path(), [&](int64_t n) { progress.push_back(n); }).ok());
  EXPECT_EQ(progress, (std::vector<int64_t>{100'000, 200'000, 250'000}));

  const std::string text = ReadFile(file.path());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::vector<std::string> lines = SplitLines(text);
  ASSERT_EQ(lines.size(), static_cast<size_t>(options.events));

  // Every line is JSON with exactly the fields of ARCHITECTURE.md, "Event format", and matches
  // the in-memory stream.
  SyntheticStream stream = MakeStream(options);
  simdjson::ondemand::parser parser;
  Event expected;
  for (size_t i = 0; i < lines.size(); ++i) {
    stream.Next(&expected);
    if (i % 97 != 0 && i > 10) continue;  // spot-check; the gzip test compares every byte
    simdjson::padded_string json(lines[i]);
    simdjson::ondemand::document doc;
    ASSERT_EQ(parser.iterate(json).get(doc), simdjson::SUCCESS) << lines[i];
    simdjson::ondemand::object obj;
    ASSERT_EQ(doc.get_object().get(obj), simdjson::SUCCESS) << lines[i];
    std::string_view user, item, type;
    int64_t ts = 0;
    double weight = 0;
    ASSERT_EQ(obj["user"].get_string().get(user), simdjson::SUCCESS) << lines[i];
    ASSERT_EQ(obj["item"].get_string().get(item), simdjson::SUCCESS) << lines[i];
    ASSERT_EQ(obj["type"].get_string().get(type), simdjson::SUCCESS) << lines[i];
    ASSERT_EQ(obj["ts"].get_int64().get(ts), simdjson::SUCCESS) << lines[i];
    ASSERT_EQ(obj["weight"].get_double().get(weight), simdjson::SUCCESS) << lines[i];
    EXPECT_EQ(user, expected.user);
    EXPECT_EQ(item, expected.item);
    EXPECT_EQ(type, expected.type);
    EXPECT_EQ(ts, expected.ts_ms);
    EXPECT_EQ(weight, expected.weight);
  }
  // The exact format of ARCHITECTURE.md, "Event format", integral weights without a decimal point.
  SyntheticStream again = MakeStream(options);
  again.Next(&expected);
  EXPECT_EQ(lines[0], absl::StrCat("{\"user\":\"", expected.user, "\",\"item\":\"", expected.item,
                                   "\",\"type\":\"", expected.type, "\",\"ts\":", expected.ts_ms,
                                   ",\"weight\":", static_cast<int>(expected.weight), "}"));
}

TEST(WriteSyntheticStreamTest, FractionalWeightsAreWrittenExactly) {
  SyntheticStreamOptions options;
  options.events = 10;
  options.event_types = {{"rate", 1.0, 0.5f}};
  TempPath file("fractional.jsonl");
  ASSERT_TRUE(WriteSyntheticStream(options, file.path()).ok());
  const std::vector<std::string> lines = SplitLines(ReadFile(file.path()));
  ASSERT_EQ(lines.size(), 10u);
  for (const std::string& line : lines) EXPECT_THAT(line, HasSubstr(",\"weight\":0.5}"));
}

TEST(WriteSyntheticStreamTest, GzipFileHoldsTheSameLines) {
  SyntheticStreamOptions options;
  options.events = 120'000;
  TempPath plain("same.jsonl");
  TempPath gz("same.jsonl.gz");
  ASSERT_TRUE(WriteSyntheticStream(options, plain.path()).ok());
  ASSERT_TRUE(WriteSyntheticStream(options, gz.path()).ok());
  const std::string raw = ReadFile(gz.path());
  ASSERT_GE(raw.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(raw[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(raw[1]), 0x8b);
  const std::string text = ReadFile(plain.path());
  EXPECT_LT(raw.size(), text.size() / 2);
  EXPECT_EQ(ReadGzip(gz.path()), text);
}

TEST(WriteSyntheticStreamTest, ZeroEventsWritesAnEmptyFile) {
  SyntheticStreamOptions options;
  options.events = 0;
  TempPath file("empty.jsonl");
  std::vector<int64_t> progress;
  ASSERT_TRUE(
      WriteSyntheticStream(options, file.path(), [&](int64_t n) { progress.push_back(n); }).ok());
  EXPECT_EQ(ReadFile(file.path()), "");
  EXPECT_EQ(progress, std::vector<int64_t>{0});
}

TEST(WriteSyntheticStreamTest, MissingDirectoryIsAnError) {
  SyntheticStreamOptions options;
  options.events = 10;
  for (const char* name : {"/no_such_dir/out.jsonl", "/no_such_dir/out.jsonl.gz"}) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/freshet_synth_missing", name);
    const absl::Status status = WriteSyntheticStream(options, path);
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_THAT(status.message(), HasSubstr(path));
  }
  // A directory is not a writable file either.
  const absl::Status status = WriteSyntheticStream(options, ::testing::TempDir());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(::testing::TempDir()));
}

TEST(WriteSyntheticStreamTest, InvalidOptionsCreateNoFile) {
  SyntheticStreamOptions options;
  options.users = 0;
  TempPath file("invalid.jsonl");
  EXPECT_EQ(WriteSyntheticStream(options, file.path()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(::access(file.path().c_str(), F_OK), 0);
  EXPECT_EQ(WriteSyntheticStream(SyntheticStreamOptions(), "").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::stream
