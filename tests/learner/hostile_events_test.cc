// Hostile input cannot spoil the model: a stream with hostile events mixed in (absurd weights,
// timestamps out of range, ids that are too long or not UTF-8, NaN and infinity handed straight
// to the learner) gives every algorithm exactly the recommendations of the same stream without
// them.
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "stream/file_event_source.h"
#include "stream/synthetic/synthetic_stream.h"

namespace freshet::learner {
namespace {

std::vector<stream::Event> CleanStream() {
  stream::SyntheticStreamOptions o;
  o.events = 6000;
  o.users = 200;
  o.items = 500;
  o.seed = 5;
  auto generator = stream::SyntheticStream::Create(o);
  EXPECT_TRUE(generator.ok()) << generator.status();
  std::vector<stream::Event> events(static_cast<size_t>(o.events));
  for (stream::Event& e : events) generator->Next(&e);
  return events;
}

std::string JsonLine(const stream::Event& e) {
  return absl::StrCat("{\"user\":\"", e.user, "\",\"item\":\"", e.item, "\",\"type\":\"", e.type,
                      "\",\"ts\":", e.ts_ms, ",\"weight\":", e.weight, "}\n");
}

// Lines no path may accept, each next to a valid event's user and item so that only the hostile
// field is wrong.
std::vector<std::string> HostileLines(const stream::Event& e) {
  const std::string user = absl::StrCat("\"user\":\"", e.user, "\"");
  const std::string item = absl::StrCat("\"item\":\"", e.item, "\"");
  const std::string ts = absl::StrCat("\"ts\":", e.ts_ms);
  const std::string ok = absl::StrCat(user, ",", item, ",", ts);
  return {
      absl::StrCat("{", ok, ",\"weight\":1e20}\n"),
      absl::StrCat("{", ok, ",\"weight\":1e300}\n"),
      absl::StrCat("{", ok, ",\"weight\":\"1e39\"}\n"),
      absl::StrCat("{", ok, ",\"weight\":-1}\n"),
      absl::StrCat("{", ok, ",\"weight\":100.5}\n"),  // above events.max_weight (100)
      absl::StrCat("{", user, ",", item, ",\"ts\":-5}\n"),
      absl::StrCat("{", user, ",", item, ",\"ts\":9223372036854775807}\n"),
      absl::StrCat("{", user, ",", item, ",\"ts\":4102444800000}\n"),  // 2100-01-01
      absl::StrCat("{\"user\":\"", std::string(257, 'u'), "\",", item, ",", ts, "}\n"),
      absl::StrCat("{", user, ",\"item\":\"", std::string(100000, 'i'), "\",", ts, "}\n"),
      absl::StrCat("{", ok, ",\"type\":\"", std::string(300, 't'), "\"}\n"),
      absl::StrCat("{\"user\":\"u\xff\",", item, ",", ts, "}\n"),
      absl::StrCat("{", user, ",\"item\":\"\xed\xa0\x80\",", ts, "}\n"),  // a UTF-16 surrogate
  };
}

std::unique_ptr<stream::FileEventSource> Open(const std::string& path) {
  auto options = stream::FileSourceOptions::ForFormat("jsonl");
  EXPECT_TRUE(options.ok());
  auto source = stream::FileEventSource::Open(path, *options);
  EXPECT_TRUE(source.ok()) << source.status();
  return *std::move(source);
}

std::vector<stream::Event> ReadAll(stream::FileEventSource& source) {
  std::vector<stream::Event> events;
  while (!source.Finished()) {
    EXPECT_TRUE(source.Poll(1 << 20, absl::ZeroDuration(), &events).ok());
  }
  return events;
}

std::vector<std::vector<kernels::ScoredItem>> Answers(
    const std::string& algorithm, const std::vector<stream::Event>& events,
    const std::vector<stream::Event>& direct_extra) {
  config::Config config;
  auto backend = kernels::CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto learner = Learner::Create(algorithm, config, backend->get());
  EXPECT_TRUE(learner.ok()) << learner.status();
  for (size_t i = 0; i < events.size(); ++i) {
    (*learner)->Apply(events[i]);
    // Hostile events handed straight to the learner, between the real ones.
    if (i % 500 == 250) {
      for (const stream::Event& e : direct_extra) (*learner)->Apply(e);
    }
  }
  EXPECT_EQ((*learner)->events_applied(), static_cast<int64_t>(events.size()));
  std::vector<std::vector<kernels::ScoredItem>> answers;
  for (int u = 0; u < 200; u += 7) {
    Recommendation r;
    EXPECT_TRUE((*learner)->Recommend(absl::StrCat("u", u), 10, true, &r).ok());
    EXPECT_EQ(r.items.size(), 10u) << algorithm << " u" << u;
    for (const kernels::ScoredItem& s : r.items) EXPECT_TRUE(std::isfinite(s.score)) << algorithm;
    answers.push_back(r.items);
  }
  return answers;
}

TEST(HostileEventsTest, RecommendationsAreThoseOfTheStreamWithoutThem) {
  const std::vector<stream::Event> clean = CleanStream();
  const std::string dir = ::testing::TempDir();
  const std::string clean_path = dir + "/hostile_clean.jsonl";
  const std::string mixed_path = dir + "/hostile_mixed.jsonl";
  size_t hostile = 0;
  {
    std::ofstream clean_out(clean_path), mixed_out(mixed_path);
    for (size_t i = 0; i < clean.size(); ++i) {
      clean_out << JsonLine(clean[i]);
      mixed_out << JsonLine(clean[i]);
      if (i % 400 == 17) {
        for (const std::string& line : HostileLines(clean[i])) {
          mixed_out << line;
          ++hostile;
        }
      }
    }
  }
  auto clean_source = Open(clean_path);
  auto mixed_source = Open(mixed_path);
  EXPECT_EQ(clean_source->stats().malformed, 0);
  EXPECT_EQ(mixed_source->stats().malformed, static_cast<int64_t>(hostile));
  const std::vector<stream::Event> from_clean = ReadAll(*clean_source);
  const std::vector<stream::Event> from_mixed = ReadAll(*mixed_source);
  ASSERT_EQ(from_clean.size(), clean.size());
  ASSERT_EQ(from_mixed.size(), clean.size());

  // Events a decoder would refuse, as a caller of the learner might still build them.
  std::vector<stream::Event> direct;
  for (const float weight : {1e20f, std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN(), -1.0f, 101.0f}) {
    stream::Event e = clean[3];
    e.weight = weight;
    direct.push_back(e);
  }
  stream::Event bad_ts = clean[4];
  bad_ts.ts_ms = -5;
  direct.push_back(bad_ts);

  // Item rows are numbered in order of first appearance, so equal answers are equal rows with
  // bitwise-equal scores.
  for (const char* algorithm : {"popularity", "bpr", "ials", "cooc", "hybrid", "blend"}) {
    EXPECT_TRUE(Answers(algorithm, from_mixed, direct) == Answers(algorithm, from_clean, {}))
        << algorithm;
  }
}

}  // namespace
}  // namespace freshet::learner
