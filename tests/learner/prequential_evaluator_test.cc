// The evaluator against a stream small enough to compute by hand (popularity model, whose
// rankings are easy to follow).
#include "learner/eval/prequential_evaluator.h"

#include <cmath>

#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/eval/replay_report.h"
#include "learner/learner.h"
#include "simdjson.h"
#include "stream/memory_event_source.h"

namespace freshet::learner {
namespace {

std::vector<stream::Event> TinyStream() {
  // ts  user item   evaluated?  popularity before  ranking (exclude seen)   rank
  //  1  u1   i1     no: i1 new
  //  2  u2   i1     yes         i1:1                [i1]                    1
  //  3  u1   i2     no: i2 new
  //  4  u2   i2     yes         i1:2 i2:1           [i2] (i1 seen)          1
  //  5  u3   i2     yes         i1:2 i2:2           [i1, i2] (tie: i1 older) 2
  //  6  u1   i1     no: u1 saw i1
  //  7  u3   i3     no: i3 new
  //  8  u1   i3     yes         i1:3 i2:3 i3:1      [i3] (i1, i2 seen)      1
  const char* rows[][2] = {{"u1", "i1"}, {"u2", "i1"}, {"u1", "i2"}, {"u2", "i2"},
                           {"u3", "i2"}, {"u1", "i1"}, {"u3", "i3"}, {"u1", "i3"}};
  std::vector<stream::Event> events;
  int64_t ts = 0;
  for (const auto& row : rows) {
    stream::Event e;
    e.user = row[0];
    e.item = row[1];
    e.ts_ms = ++ts;
    events.push_back(e);
  }
  return events;
}

ReplayRun ReplayTiny(int k, int windows) {
  config::Config config;
  auto backend = kernels::CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto learner = Learner::Create("popularity", config, backend->get());
  EXPECT_TRUE(learner.ok());
  stream::MemoryEventSource source(TinyStream());
  EvaluatorOptions options;
  options.k = k;
  options.windows = windows;
  options.total_events = 8;
  auto run = RunPrequential(**learner, source, options);
  EXPECT_TRUE(run.ok()) << run.status();
  return *run;
}

TEST(PrequentialEvaluatorTest, MatchesHandComputedMetricsAtK2) {
  const ReplayRun run = ReplayTiny(/*k=*/2, /*windows=*/1);
  EXPECT_EQ(run.total.events, 8);
  EXPECT_EQ(run.total.evaluated, 4);
  EXPECT_DOUBLE_EQ(run.total.recall, 1.0);
  EXPECT_DOUBLE_EQ(run.total.mrr, (1 + 1 + 0.5 + 1) / 4.0);
  EXPECT_DOUBLE_EQ(run.total.ndcg, (3 + 1 / std::log2(3.0)) / 4.0);
  EXPECT_DOUBLE_EQ(run.total.coverage, 1.0);  // i1, i2, i3 all recommended at some point
}

TEST(PrequentialEvaluatorTest, MatchesHandComputedMetricsAtK1) {
  const ReplayRun run = ReplayTiny(/*k=*/1, /*windows=*/2);
  EXPECT_EQ(run.total.evaluated, 4);
  EXPECT_DOUBLE_EQ(run.total.recall, 0.75);  // event 5 ranks i2 second
  EXPECT_DOUBLE_EQ(run.total.mrr, 0.75);
  EXPECT_DOUBLE_EQ(run.total.ndcg, 0.75);
  ASSERT_EQ(run.windows.size(), 2u);
  EXPECT_EQ(run.windows[0].begin_event, 0);
  EXPECT_EQ(run.windows[0].end_event, 4);
  EXPECT_EQ(run.windows[0].metrics.evaluated, 2);
  EXPECT_DOUBLE_EQ(run.windows[0].metrics.recall, 1.0);
  EXPECT_EQ(run.windows[1].begin_ts_ms, 5);
  EXPECT_EQ(run.windows[1].end_ts_ms, 8);
  EXPECT_EQ(run.windows[1].metrics.evaluated, 2);
  EXPECT_DOUBLE_EQ(run.windows[1].metrics.recall, 0.5);
}

struct Row {
  const char* user;
  const char* item;
  const char* type;
  float weight;
};

std::vector<stream::Event> MakeStream(std::initializer_list<Row> rows) {
  std::vector<stream::Event> events;
  int64_t ts = 0;
  for (const Row& row : rows) {
    stream::Event e;
    e.user = row.user;
    e.item = row.item;
    e.type = row.type;
    e.weight = row.weight;
    e.ts_ms = ++ts;
    events.push_back(e);
  }
  return events;
}

// Weighted popularity makes every ranking a strict order (the Learner's counts add the weights).
//  #  user item type      w   popularity before (unseen)  ranking  rank  user's earlier events
//  1  s    A    view     10   (A..E new: not ranked)
//  2  s    B    view      8
//  3  s    C    view      6
//  4  s    D    view      4
//  5  s    E    view      2
//  6  u1   A    view      1   A10 B8 C6 D4 E2             A B       1     0 (first)
//  7  u1   C    cart      1   B8 C6 D4 E2                 B C       2     1 (first)
//  8  u1   B    view      1   B8 D4 E2                    B D       1     2 (first)
//  9  u1   D    view      1   D4 E2                       D E       1     3 (first)
// 10  u1   E    purchase  1   E2                          E         1     4 (first)
// 11  s    F    view     20   (F new: not ranked)
// 12  s    G    view     30   (G new: not ranked)
// 13  u1   F    purchase  1   G30 F20                     G F       2     5 (later)
// 14  u1   G    view      1   G30                         G         1     6 (later)
// 15  u2   G    cart      1   G31 F21 A11 B9 C7 ...       G A       1     0 (first)
std::vector<stream::Event> TypedStream() {
  return MakeStream({{"s", "A", "view", 10},
                     {"s", "B", "view", 8},
                     {"s", "C", "view", 6},
                     {"s", "D", "view", 4},
                     {"s", "E", "view", 2},
                     {"u1", "A", "view", 1},
                     {"u1", "C", "cart", 1},
                     {"u1", "B", "view", 1},
                     {"u1", "D", "view", 1},
                     {"u1", "E", "purchase", 1},
                     {"s", "F", "view", 20},
                     {"s", "G", "view", 30},
                     {"u1", "F", "purchase", 1},
                     {"u1", "G", "view", 1},
                     {"u2", "G", "cart", 1}});
}

ReplayRun ReplayPopularity(std::vector<stream::Event> events, int k, int stability_every) {
  config::Config config;
  auto backend = kernels::CreateBackend("cpu");
  EXPECT_TRUE(backend.ok());
  auto learner = Learner::Create("popularity", config, backend->get());
  EXPECT_TRUE(learner.ok());
  const int64_t n = static_cast<int64_t>(events.size());
  stream::MemoryEventSource source(std::move(events));
  EvaluatorOptions options;
  options.k = k;
  options.windows = 1;
  options.total_events = n;
  options.stability_every = stability_every;
  auto run = RunPrequential(**learner, source, options);
  EXPECT_TRUE(run.ok()) << run.status();
  return *run;
}

const SliceMetrics* TypeSlice(const ReplayRun& run, const std::string& type) {
  for (const auto& [t, slice] : run.by_type) {
    if (t == type) return &slice;
  }
  return nullptr;
}

TEST(PrequentialEvaluatorTest, BreakdownsMatchHandComputedFiguresAtK1) {
  const ReplayRun run = ReplayPopularity(TypedStream(), /*k=*/1, /*stability_every=*/0);
  EXPECT_EQ(run.total.evaluated, 8);
  EXPECT_DOUBLE_EQ(run.total.recall, 6.0 / 8.0);
  ASSERT_EQ(run.by_type.size(), 3u);  // sorted by name
  EXPECT_EQ(run.by_type[0].first, "cart");
  EXPECT_EQ(run.by_type[1].first, "purchase");
  EXPECT_EQ(run.by_type[2].first, "view");
  EXPECT_EQ(run.by_type[0].second.evaluated, 2);  // events 7 (miss) and 15
  EXPECT_DOUBLE_EQ(run.by_type[0].second.recall, 0.5);
  EXPECT_DOUBLE_EQ(run.by_type[0].second.ndcg, 0.5);
  EXPECT_EQ(run.by_type[1].second.evaluated, 2);  // events 10 and 13 (miss)
  EXPECT_DOUBLE_EQ(run.by_type[1].second.recall, 0.5);
  EXPECT_EQ(run.by_type[2].second.evaluated, 4);  // events 6, 8, 9, 14
  EXPECT_DOUBLE_EQ(run.by_type[2].second.recall, 1.0);
  EXPECT_DOUBLE_EQ(run.by_type[2].second.ndcg, 1.0);
  EXPECT_EQ(run.early_events_limit, 5);
  EXPECT_EQ(run.early_events.evaluated, 6);  // events 6-10 and 15; 7 misses
  EXPECT_DOUBLE_EQ(run.early_events.recall, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(run.early_events.ndcg, 5.0 / 6.0);
  EXPECT_EQ(run.later_events.evaluated, 2);  // events 13 (miss) and 14
  EXPECT_DOUBLE_EQ(run.later_events.recall, 0.5);
  EXPECT_DOUBLE_EQ(run.later_events.ndcg, 0.5);
}

TEST(PrequentialEvaluatorTest, BreakdownsMatchHandComputedFiguresAtK2) {
  const ReplayRun run = ReplayPopularity(TypedStream(), /*k=*/2, /*stability_every=*/0);
  const double second = 1.0 / std::log2(3.0);  // NDCG of a hit at rank 2
  EXPECT_DOUBLE_EQ(run.total.recall, 1.0);
  EXPECT_DOUBLE_EQ(run.total.ndcg, (6 + 2 * second) / 8.0);
  ASSERT_NE(TypeSlice(run, "cart"), nullptr);
  EXPECT_DOUBLE_EQ(TypeSlice(run, "cart")->recall, 1.0);
  EXPECT_DOUBLE_EQ(TypeSlice(run, "cart")->ndcg, (1 + second) / 2.0);
  EXPECT_DOUBLE_EQ(TypeSlice(run, "purchase")->ndcg, (1 + second) / 2.0);
  EXPECT_DOUBLE_EQ(TypeSlice(run, "view")->ndcg, 1.0);
  EXPECT_EQ(TypeSlice(run, ""), nullptr);
  EXPECT_DOUBLE_EQ(run.early_events.recall, 1.0);
  EXPECT_DOUBLE_EQ(run.early_events.ndcg, (5 + second) / 6.0);
  EXPECT_DOUBLE_EQ(run.later_events.recall, 1.0);
  EXPECT_DOUBLE_EQ(run.later_events.ndcg, (1 + second) / 2.0);
}

TEST(PrequentialEvaluatorTest, UntypedStreamHasOneEmptyTypeBucket) {
  const ReplayRun run = ReplayTiny(/*k=*/2, /*windows=*/1);
  ASSERT_EQ(run.by_type.size(), 1u);
  EXPECT_EQ(run.by_type[0].first, "");
  EXPECT_EQ(run.by_type[0].second.evaluated, run.total.evaluated);
  EXPECT_DOUBLE_EQ(run.by_type[0].second.ndcg, run.total.ndcg);
  // No user of the tiny stream reaches 5 events.
  EXPECT_EQ(run.early_events.evaluated, 4);
  EXPECT_EQ(run.later_events.evaluated, 0);
}

// Stability, every user sampled, k = 2. s's events bring new items only, so nothing of s is ranked
// and s gives no pair; u1's second event gives the one pair: the list kept right after u1 learnt A
// is [B, C] (B8 C6), and the ranking at u1's next event is compared with it.
TEST(PrequentialEvaluatorTest, StabilityDropsWhenOtherUsersMoveTheList) {
  // Between u1's events, t makes D the most popular item: the ranking is [D, B], overlap 1/2.
  const ReplayRun moved = ReplayPopularity(MakeStream({{"s", "A", "view", 10},
                                                       {"s", "B", "view", 8},
                                                       {"s", "C", "view", 6},
                                                       {"u1", "A", "view", 1},
                                                       {"t", "D", "view", 50},
                                                       {"u1", "B", "view", 1}}),
                                           /*k=*/2, /*stability_every=*/1);
  EXPECT_EQ(moved.stability.sample_every, 1);
  EXPECT_EQ(moved.stability.pairs, 1);
  EXPECT_DOUBLE_EQ(moved.stability.mean_overlap, 0.5);
}

TEST(PrequentialEvaluatorTest, StabilityIsOneWhenOtherUsersLeaveTheListAlone) {
  // t learns C once more (C7 < B8): the order stays [B, C], overlap 1.
  const ReplayRun same = ReplayPopularity(MakeStream({{"s", "A", "view", 10},
                                                      {"s", "B", "view", 8},
                                                      {"s", "C", "view", 6},
                                                      {"u1", "A", "view", 1},
                                                      {"t", "C", "view", 1},
                                                      {"u1", "B", "view", 1}}),
                                          /*k=*/2, /*stability_every=*/1);
  // t's event is ranked too, but t had no kept list yet: still one pair.
  EXPECT_EQ(same.stability.pairs, 1);
  EXPECT_DOUBLE_EQ(same.stability.mean_overlap, 1.0);
}

TEST(PrequentialEvaluatorTest, StabilityDoesNotChangeTheProtocolsFigures) {
  const ReplayRun without = ReplayPopularity(TypedStream(), /*k=*/2, /*stability_every=*/0);
  const ReplayRun with = ReplayPopularity(TypedStream(), /*k=*/2, /*stability_every=*/1);
  EXPECT_EQ(without.stability.pairs, 0);
  EXPECT_EQ(without.stability.sample_every, 0);
  EXPECT_GT(with.stability.pairs, 0);
  EXPECT_EQ(with.total.evaluated, without.total.evaluated);
  EXPECT_DOUBLE_EQ(with.total.recall, without.total.recall);
  EXPECT_DOUBLE_EQ(with.total.ndcg, without.total.ndcg);
  EXPECT_DOUBLE_EQ(with.total.mrr, without.total.mrr);
  EXPECT_DOUBLE_EQ(with.total.coverage, without.total.coverage);
  EXPECT_DOUBLE_EQ(with.early_events.ndcg, without.early_events.ndcg);
  EXPECT_DOUBLE_EQ(with.later_events.ndcg, without.later_events.ndcg);
}

TEST(PrequentialEvaluatorTest, NoEvalLearnsEverythingAndRanksNothing) {
  config::Config config;
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  auto learner = Learner::Create("bpr", config, backend->get());
  ASSERT_TRUE(learner.ok());
  stream::MemoryEventSource source(TinyStream());
  EvaluatorOptions options;
  options.evaluate = false;
  options.windows = 3;
  options.total_events = 8;
  auto run = RunPrequential(**learner, source, options);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->total.evaluated, 0);
  EXPECT_EQ(run->total.events, 8);
  EXPECT_EQ((*learner)->events_applied(), 8);
  ASSERT_EQ(run->windows.size(), 3u);
  EXPECT_EQ(run->windows[0].metrics.events + run->windows[1].metrics.events +
                run->windows[2].metrics.events,
            8);
}

TEST(PrequentialEvaluatorTest, SourceLongerThanAnnouncedStillCountsEveryEvent) {
  for (const bool evaluate : {false, true}) {
    for (const int64_t announced : {0, 3}) {
      config::Config config;
      auto backend = kernels::CreateBackend("cpu");
      ASSERT_TRUE(backend.ok());
      auto learner = Learner::Create("popularity", config, backend->get());
      ASSERT_TRUE(learner.ok());
      stream::MemoryEventSource source(TinyStream());
      EvaluatorOptions options;
      options.evaluate = evaluate;
      options.windows = 4;
      options.total_events = announced;
      auto run = RunPrequential(**learner, source, options);
      ASSERT_TRUE(run.ok());
      EXPECT_EQ(run->total.events, 8);
      int64_t in_windows = 0;
      for (const ReplayWindow& w : run->windows) in_windows += w.metrics.events;
      EXPECT_EQ(in_windows, 8) << evaluate << " " << announced;
      EXPECT_EQ(run->windows.back().end_event, 8);
    }
  }
}

TEST(ReplayReportTest, JsonHasTheDocumentedShape) {
  ReplayReport report;
  report.dataset = "tiny \"quoted\"";
  report.events = 8;
  report.k = 2;
  report.runs.push_back(ReplayTiny(2, 2));
  const std::string json = ReportToJson(report);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["dataset"].get_string().value()), "tiny \"quoted\"");
  EXPECT_EQ(int64_t(doc["events"].get_int64().value()), 8);
  EXPECT_EQ(int64_t(doc["k"].get_int64().value()), 2);
  simdjson::dom::element pop = doc["models"]["popularity"];
  EXPECT_DOUBLE_EQ(double(pop["recall"].get_double().value()), 1.0);
  EXPECT_EQ(int64_t(pop["evaluated"].get_int64().value()), 4);
  for (const char* key : {"ndcg", "mrr", "coverage", "events_per_sec"}) {
    EXPECT_EQ(pop[key].error(), simdjson::SUCCESS) << key;
  }
  simdjson::dom::array windows = doc["windows"].get_array();
  EXPECT_EQ(windows.size(), 2u);
  const std::string html = ReportToHtml(report);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("polyline"), std::string::npos);
  EXPECT_NE(html.find("tiny &quot;quoted&quot;"), std::string::npos);
  EXPECT_NE(SummaryTable(report).find("popularity"), std::string::npos);
}

TEST(ReplayReportTest, JsonAndHtmlCarryTheBreakdownsAndStability) {
  ReplayReport report;
  report.dataset = "typed";
  report.events = 15;
  report.k = 1;
  report.runs.push_back(ReplayPopularity(TypedStream(), /*k=*/1, /*stability_every=*/1));
  const std::string json = ReportToJson(report);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  simdjson::dom::element pop = doc["models"]["popularity"];
  simdjson::dom::element cart = pop["by_type"]["cart"];
  EXPECT_EQ(int64_t(cart["evaluated"].get_int64().value()), 2);
  EXPECT_DOUBLE_EQ(double(cart["recall"].get_double().value()), 0.5);
  EXPECT_DOUBLE_EQ(double(cart["ndcg"].get_double().value()), 0.5);
  for (const char* type : {"purchase", "view"}) {
    EXPECT_EQ(pop["by_type"][type]["ndcg"].error(), simdjson::SUCCESS) << type;
  }
  EXPECT_EQ(pop["by_type"].get_object().value().size(), 3u);
  simdjson::dom::element activity = pop["by_user_activity"];
  EXPECT_EQ(int64_t(activity["first_events"].get_int64().value()), 5);
  EXPECT_EQ(int64_t(activity["first"]["evaluated"].get_int64().value()), 6);
  EXPECT_DOUBLE_EQ(double(activity["first"]["recall"].get_double().value()), 5.0 / 6.0);
  EXPECT_EQ(int64_t(activity["later"]["evaluated"].get_int64().value()), 2);
  EXPECT_DOUBLE_EQ(double(activity["later"]["ndcg"].get_double().value()), 0.5);
  simdjson::dom::element stability = pop["stability"];
  EXPECT_EQ(int64_t(stability["sample_every"].get_int64().value()), 1);
  EXPECT_EQ(int64_t(stability["pairs"].get_int64().value()), report.runs[0].stability.pairs);
  EXPECT_GT(int64_t(stability["pairs"].get_int64().value()), 0);
  EXPECT_EQ(stability["mean_overlap"].get_double().error(), simdjson::SUCCESS);
  EXPECT_EQ(stability["seconds"].get_double().error(), simdjson::SUCCESS);
  // Windows keep the plain metrics only.
  simdjson::dom::element window_pop = doc["windows"].at(0)["models"]["popularity"];
  EXPECT_EQ(window_pop["recall"].error(), simdjson::SUCCESS);
  EXPECT_EQ(window_pop["by_type"].error(), simdjson::NO_SUCH_FIELD);

  // Not measured: mean_overlap is null.
  report.runs[0] = ReplayPopularity(TypedStream(), /*k=*/1, /*stability_every=*/0);
  ASSERT_EQ(parser.parse(ReportToJson(report)).get(doc), simdjson::SUCCESS);
  EXPECT_TRUE(doc["models"]["popularity"]["stability"]["mean_overlap"].is_null());
  EXPECT_EQ(int64_t(doc["models"]["popularity"]["stability"]["pairs"].get_int64().value()), 0);

  const std::string html = ReportToHtml(report);
  EXPECT_NE(html.find("By user activity and event type"), std::string::npos);
  EXPECT_NE(html.find("<h3>popularity</h3>"), std::string::npos);
  EXPECT_NE(html.find("type cart"), std::string::npos);
  EXPECT_NE(html.find("user's first 5 events"), std::string::npos);
  EXPECT_NE(html.find("<h2>Stability</h2>"), std::string::npos);
  // Self-contained: the only URLs are the SVG namespace of each chart.
  size_t urls = 0, svgs = 0;
  for (size_t at = html.find("http"); at != std::string::npos; at = html.find("http", at + 1)) {
    ++urls;
  }
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) {
    ++svgs;
  }
  EXPECT_EQ(svgs, 3u);  // recall over the stream, NDCG by slice, stability
  EXPECT_EQ(urls, svgs);
  EXPECT_NE(SummaryTable(report).find("later ndcg"), std::string::npos);
}

}  // namespace
}  // namespace freshet::learner
