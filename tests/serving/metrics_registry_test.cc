#include "serving/metrics/metrics_registry.h"

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/serving/prometheus_text.h"

namespace freshet::serving {
namespace {

using ::testing::HasSubstr;

TEST(MetricsRegistryTest, RendersCountersAndGauges) {
  MetricsRegistry registry;
  Counter* events = registry.AddCounter("freshet_events_total", "Events learned.");
  Gauge* users = registry.AddGauge("freshet_users", "Known users.");
  events->Increment();
  events->Increment(41);
  users->Set(10.5);
  users->Add(-0.25);
  EXPECT_EQ(registry.RenderText(),
            "# HELP freshet_events_total Events learned.\n"
            "# TYPE freshet_events_total counter\n"
            "freshet_events_total 42\n"
            "# HELP freshet_users Known users.\n"
            "# TYPE freshet_users gauge\n"
            "freshet_users 10.25\n");
}

TEST(MetricsRegistryTest, RegistrationIsGetOrCreate) {
  MetricsRegistry registry;
  Counter* a = registry.AddCounter("x_total", "x");
  Counter* b = registry.AddCounter("x_total", "x again");
  EXPECT_EQ(a, b);
  CounterFamily* f1 = registry.AddCounterFamily("y_total", "y", {"route"});
  CounterFamily* f2 = registry.AddCounterFamily("y_total", "y", {"route"});
  EXPECT_EQ(f1, f2);
  EXPECT_EQ(f1->WithLabels({"/a"}), f2->WithLabels({"/a"}));
  EXPECT_NE(f1->WithLabels({"/a"}), f1->WithLabels({"/b"}));
}

TEST(MetricsRegistryTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry registry;
  CounterFamily* family =
      registry.AddCounterFamily("req_total", "Requests\nwith a \\ in help.", {"route", "status"});
  family->WithLabels({"/a\"b\\c\nd", "200"})->Increment(3);
  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("# HELP req_total Requests\\nwith a \\\\ in help.\n"));
  EXPECT_THAT(text, HasSubstr("req_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 3\n"));
  absl::StatusOr<std::vector<testing::Sample>> samples = testing::ParsePrometheusText(text);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(
      testing::FindSample(*samples, "req_total", {{"route", "/a\"b\\c\nd"}, {"status", "200"}}),
      3.0);
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  Histogram* h = registry.AddHistogram("lat_seconds", "Latency.", {0.001, 0.01, 0.1, 1.0});
  for (double v : {0.0005, 0.001, 0.002, 0.05, 0.05, 0.5, 3.0, 7.0}) h->Observe(v);
  h->Observe(std::nan(""));  // ignored
  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("# TYPE lat_seconds histogram\n"
                              "lat_seconds_bucket{le=\"0.001\"} 2\n"
                              "lat_seconds_bucket{le=\"0.01\"} 3\n"
                              "lat_seconds_bucket{le=\"0.1\"} 5\n"
                              "lat_seconds_bucket{le=\"1\"} 6\n"
                              "lat_seconds_bucket{le=\"+Inf\"} 8\n"
                              "lat_seconds_sum 10.6035\n"
                              "lat_seconds_count 8\n"));
  absl::StatusOr<std::vector<testing::Sample>> samples = testing::ParsePrometheusText(text);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_TRUE(testing::HistogramsAreConsistent(*samples).ok());
  const Histogram::Snapshot snap = h->Read();
  EXPECT_EQ(snap.count, 8u);
  EXPECT_DOUBLE_EQ(snap.sum, 10.6035);
}

TEST(MetricsRegistryTest, LabelledHistogramsParseBack) {
  MetricsRegistry registry;
  HistogramFamily* family = registry.AddHistogramFamily("req_seconds", "Latency by route.",
                                                        {"route"}, Histogram::LatencyBuckets());
  for (int i = 0; i < 100; ++i) family->WithLabels({"/a"})->Observe(i * 0.001);
  family->WithLabels({"/b"})->Observe(20.0);
  absl::StatusOr<std::vector<testing::Sample>> samples =
      testing::ParsePrometheusText(registry.RenderText());
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_TRUE(testing::HistogramsAreConsistent(*samples).ok())
      << testing::HistogramsAreConsistent(*samples);
  EXPECT_EQ(testing::FindSample(*samples, "req_seconds_count", {{"route", "/a"}}), 100.0);
  EXPECT_EQ(testing::FindSample(*samples, "req_seconds_bucket", {{"route", "/a"}, {"le", "0.01"}}),
            11.0);  // 0 .. 0.010 inclusive
  EXPECT_EQ(testing::FindSample(*samples, "req_seconds_bucket", {{"route", "/b"}, {"le", "10"}}),
            0.0);
  EXPECT_EQ(testing::FindSample(*samples, "req_seconds_bucket", {{"route", "/b"}, {"le", "+Inf"}}),
            1.0);
}

TEST(MetricsRegistryTest, CallbackGaugeIsEvaluatedAtScrape) {
  MetricsRegistry registry;
  double depth = 3;
  registry.AddCallbackGauge("queue_depth", "Queue depth.", [&] { return depth; });
  EXPECT_THAT(registry.RenderText(), HasSubstr("queue_depth 3\n"));
  depth = 7.5;
  EXPECT_THAT(registry.RenderText(), HasSubstr("queue_depth 7.5\n"));
  registry.RemoveCallbackGauge("queue_depth");
  EXPECT_EQ(registry.RenderText(), "");
}

TEST(MetricsRegistryTest, SpecialValues) {
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatMetricValue(0.00025), "0.00025");
  EXPECT_EQ(FormatMetricValue(1e21), "1e+21");
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  CounterFamily* counters = registry.AddCounterFamily("c_total", "c", {"thread"});
  Histogram* h = registry.AddHistogram("h_seconds", "h", {0.5});
  Gauge* g = registry.AddGauge("g", "g");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* mine = counters->WithLabels({t % 2 == 0 ? "even" : "odd"});
      for (int i = 0; i < kPerThread; ++i) {
        mine->Increment();
        h->Observe(i % 2 == 0 ? 0.25 : 1.0);
        g->Add(1.0);
      }
    });
  }
  // Scrapes run concurrently with the updates.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(testing::ParsePrometheusText(registry.RenderText()).ok());
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counters->WithLabels({"even"})->Value(), 2u * kPerThread);
  EXPECT_EQ(counters->WithLabels({"odd"})->Value(), 2u * kPerThread);
  const Histogram::Snapshot snap = h->Read();
  EXPECT_EQ(snap.count, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(snap.cumulative[0], static_cast<uint64_t>(kThreads * kPerThread / 2));
  EXPECT_DOUBLE_EQ(snap.sum, kThreads * (kPerThread / 2) * 1.25);
  EXPECT_EQ(g->Value(), kThreads * kPerThread);
}

}  // namespace
}  // namespace freshet::serving
