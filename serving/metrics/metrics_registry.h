// A small Prometheus registry: counters, gauges and fixed-bucket histograms, optionally in labelled
// families, plus gauges computed by a callback at scrape time, rendered in the Prometheus text
// exposition format 0.0.4 (RenderText, served on GET /metrics).
//
// Hot path: Counter::Increment, Gauge::Set/Add and Histogram::Observe are lock-free atomics on the
// metric itself; nothing takes a registry-wide lock. Look a labelled child up once
// (Family::WithLabels takes that family's reader lock) and keep the pointer.
//
// Ownership: the registry owns every metric; pointers it hands out stay valid for its lifetime.
// Registration is get-or-create: adding a name that exists with the same type, labels (and
// buckets) returns the existing metric, so several components may share one registry. Names and
// label names must match the Prometheus grammar; a bad name or a conflicting re-registration is a
// programmer error (FRESHET_CHECK), never input-driven.
//
// Thread-safety: every class here is thread-safe.
#ifndef FRESHET_SERVING_METRICS_METRICS_REGISTRY_H_
#define FRESHET_SERVING_METRICS_METRICS_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/mutex.h"
#include "common/rw_lock.h"

namespace freshet::serving {

// A monotonically increasing integer count.
class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into fixed buckets (value <= upper bound, Prometheus "le"), with their sum.
class Histogram {
 public:
  // Upper bounds must be finite and strictly increasing (FRESHET_CHECK); +Inf is implicit.
  explicit Histogram(std::vector<double> upper_bounds);

  // Adds one observation. NaN is ignored.
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per upper bound, then +Inf; non-decreasing
    uint64_t count = 0;                // == cumulative.back()
    double sum = 0.0;
  };
  // A snapshot whose buckets are cumulative and whose count equals the +Inf bucket. Taken without
  // stopping writers, so concurrent observations may be partly included.
  Snapshot Read() const;

  const std::vector<double>& upper_bounds() const { return bounds_; }

  // Request latency in seconds: 100 us to 10 s.
  static std::vector<double> LatencyBuckets();

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

// A metric with a fixed list of label names; one child metric per distinct label-value tuple.
template <typename Metric>
class MetricFamily {
 public:
  // Returns the child for `values` (one per label name, in order; FRESHET_CHECK on a count
  // mismatch), creating it on first use. The pointer stays valid for the family's lifetime.
  Metric* WithLabels(absl::Span<const absl::string_view> values) ABSL_LOCKS_EXCLUDED(mu_);
  Metric* WithLabels(std::initializer_list<absl::string_view> values) {
    return WithLabels(absl::MakeConstSpan(values.begin(), values.size()));
  }

  const std::vector<std::string>& label_names() const { return label_names_; }

  struct Child {
    std::vector<std::string> values;
    std::unique_ptr<Metric> metric;
  };
  // Calls fn(child) for every child in creation order (under the reader lock).
  void ForEach(const std::function<void(const Child&)>& fn) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class MetricsRegistry;
  MetricFamily(std::vector<std::string> label_names, std::function<std::unique_ptr<Metric>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<Metric>()> make_;
  // freshet locks (std:: and pthread ones underneath) rather than absl::Mutex, here and below,
  // so that ThreadSanitizer, which cannot see inside Debian's uninstrumented Abseil, checks the
  // hot path too. Taken after the registry's mu_ when RenderText() visits the children.
  mutable RwLock mu_;
  absl::flat_hash_map<std::string, size_t> index_ ABSL_GUARDED_BY(mu_);  // joined values -> child
  std::vector<std::unique_ptr<Child>> children_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The Content-Type of RenderText()'s output.
  static constexpr absl::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  Counter* AddCounter(absl::string_view name, absl::string_view help);
  Gauge* AddGauge(absl::string_view name, absl::string_view help);
  Histogram* AddHistogram(absl::string_view name, absl::string_view help,
                          std::vector<double> upper_bounds);

  CounterFamily* AddCounterFamily(absl::string_view name, absl::string_view help,
                                  std::vector<std::string> label_names);
  GaugeFamily* AddGaugeFamily(absl::string_view name, absl::string_view help,
                              std::vector<std::string> label_names);
  HistogramFamily* AddHistogramFamily(absl::string_view name, absl::string_view help,
                                      std::vector<std::string> label_names,
                                      std::vector<double> upper_bounds);

  // A gauge whose value is fn() at each scrape. fn runs on the scraping thread, must be cheap and
  // thread-safe, and must stay callable until RemoveCallbackGauge(name) or the registry's end.
  // Re-adding a name replaces its function.
  void AddCallbackGauge(absl::string_view name, absl::string_view help, std::function<double()> fn);
  void RemoveCallbackGauge(absl::string_view name);

  // Every metric in registration order, in the text exposition format 0.0.4: "# HELP" and
  // "# TYPE" lines, label values escaped (\\, \", \n), histograms as cumulative _bucket{le=...}
  // lines ending with le="+Inf", then _sum and _count.
  std::string RenderText() const;

 private:
  struct Entry;
  Entry* FindOrAdd(absl::string_view name, absl::string_view help, int type,
                   const std::vector<std::string>& label_names,
                   const std::vector<double>& upper_bounds, bool* created)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// Exposition helpers, exposed for tests: a label value with \\, \" and \n escaped; a HELP text
// with \\ and \n escaped; a number as Prometheus reads it (shortest round-trip form, +Inf, -Inf,
// NaN).
std::string EscapeLabelValue(absl::string_view value);
std::string EscapeHelp(absl::string_view help);
std::string FormatMetricValue(double value);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_METRICS_METRICS_REGISTRY_H_
