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

}  // namespace
}  // namespace freshet::learner
