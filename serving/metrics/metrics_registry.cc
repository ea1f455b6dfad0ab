#include "serving/metrics/metrics_registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"

namespace freshet::serving {
namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2, kCallbackGauge = 3 };

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

bool ValidMetricName(absl::string_view name) {
  return !name.empty() && IsNameStart(name[0]) && std::all_of(name.begin(), name.end(), IsNameChar);
}

bool ValidLabelName(absl::string_view name) {
  return !name.empty() && name[0] != ':' && IsNameStart(name[0]) &&
         std::all_of(name.begin(), name.end(), [](char c) { return c != ':' && IsNameChar(c); }) &&
         name.substr(0, 2) != "__" && name != "le";
}

const char* TypeName(int type) {
  switch (type) {
    case kCounter:
      return "counter";
    case kHistogram:
      return "histogram";
    default:
      return "gauge";
  }
}

// "{a="x",b="y"" without the closing brace, so a histogram can append le; empty when no labels.
std::string LabelPrefix(const std::vector<std::string>& names,
                        const std::vector<std::string>& values) {
  if (names.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  return out;
}

std::string CloseLabels(const std::string& prefix) { return prefix.empty() ? "" : prefix + "}"; }

void RenderHistogram(const std::string& name, const std::string& prefix, const Histogram& h,
                     std::string* out) {
  const Histogram::Snapshot snap = h.Read();
  const std::string open = prefix.empty() ? "{" : prefix + ",";
  for (size_t i = 0; i < snap.cumulative.size(); ++i) {
    const std::string le =
        i < h.upper_bounds().size() ? FormatMetricValue(h.upper_bounds()[i]) : "+Inf";
    absl::StrAppend(out, name, "_bucket", open, "le=\"", le, "\"} ", snap.cumulative[i], "\n");
  }
  absl::StrAppend(out, name, "_sum", CloseLabels(prefix), " ", FormatMetricValue(snap.sum), "\n");
  absl::StrAppend(out, name, "_count", CloseLabels(prefix), " ", snap.count, "\n");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Histogram

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    FRESHET_CHECK(std::isfinite(bounds_[i]));
    FRESHET_CHECK(i == 0 || bounds_[i] > bounds_[i - 1]);
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // Bucket = first bound >= value; bucket lists are short, so a linear scan beats a binary search.
  size_t i = 0;
  const size_t n = bounds_.size();
  while (i < n && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snap;
  snap.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = running;
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::vector<double> Histogram::LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

// ---------------------------------------------------------------------------------------------
// MetricFamily

template <typename Metric>
Metric* MetricFamily<Metric>::WithLabels(absl::Span<const absl::string_view> values) {
  FRESHET_CHECK(values.size() == label_names_.size());
  // '\xff' never occurs in UTF-8 text, so the joined key is unambiguous for label values.
  std::string key = absl::StrJoin(values, "\xff");
  {
    ReaderLock lock(&mu_);
    auto it = index_.find(key);
    if (it != index_.end()) return children_[it->second]->metric.get();
  }
  WriterLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) return children_[it->second]->metric.get();
  auto child = std::make_unique<Child>();
  child->values.reserve(values.size());
  for (absl::string_view v : values) child->values.emplace_back(v);
  child->metric = make_();
  Metric* metric = child->metric.get();
  index_.emplace(std::move(key), children_.size());
  children_.push_back(std::move(child));
  return metric;
}

template <typename Metric>
void MetricFamily<Metric>::ForEach(const std::function<void(const Child&)>& fn) const {
  ReaderLock lock(&mu_);
  for (const auto& child : children_) fn(*child);
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

// ---------------------------------------------------------------------------------------------
// MetricsRegistry

struct MetricsRegistry::Entry {
  std::string name;
  std::string help;
  int type = kCounter;
  bool labelled = false;
  std::vector<std::string> label_names;
  std::vector<double> upper_bounds;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::unique_ptr<CounterFamily> counter_family;
  std::unique_ptr<GaugeFamily> gauge_family;
  std::unique_ptr<HistogramFamily> histogram_family;
  std::function<double()> callback;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Entry* MetricsRegistry::FindOrAdd(absl::string_view name, absl::string_view help,
                                                   int type,
                                                   const std::vector<std::string>& label_names,
                                                   const std::vector<double>& upper_bounds,
                                                   bool* created) {
  FRESHET_CHECK(ValidMetricName(name));
  for (const std::string& label : label_names) FRESHET_CHECK(ValidLabelName(label));
  for (const auto& entry : entries_) {
    if (entry->name != name) continue;
    // Same name again: it must be the same metric.
    FRESHET_CHECK(entry->type == type);
    FRESHET_CHECK(entry->label_names == label_names);
    FRESHET_CHECK(entry->upper_bounds == upper_bounds);
    *created = false;
    return entry.get();
  }
  auto entry = std::make_unique<Entry>();
  entry->name = std::string(name);
  entry->help = std::string(help);
  entry->type = type;
  entry->label_names = label_names;
  entry->upper_bounds = upper_bounds;
  entries_.push_back(std::move(entry));
  *created = true;
  return entries_.back().get();
}

Counter* MetricsRegistry::AddCounter(absl::string_view name, absl::string_view help) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kCounter, {}, {}, &created);
  FRESHET_CHECK(created || !e->labelled);
  if (created) e->counter = std::make_unique<Counter>();
  return e->counter.get();
}

Gauge* MetricsRegistry::AddGauge(absl::string_view name, absl::string_view help) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kGauge, {}, {}, &created);
  FRESHET_CHECK(created || !e->labelled);
  if (created) e->gauge = std::make_unique<Gauge>();
  return e->gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(absl::string_view name, absl::string_view help,
                                         std::vector<double> upper_bounds) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kHistogram, {}, upper_bounds, &created);
  FRESHET_CHECK(created || !e->labelled);
  if (created) e->histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return e->histogram.get();
}

CounterFamily* MetricsRegistry::AddCounterFamily(absl::string_view name, absl::string_view help,
                                                 std::vector<std::string> label_names) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kCounter, label_names, {}, &created);
  if (created) {
    e->labelled = true;
    e->counter_family.reset(
        new CounterFamily(std::move(label_names), [] { return std::make_unique<Counter>(); }));
  }
  FRESHET_CHECK(e->labelled);
  return e->counter_family.get();
}

GaugeFamily* MetricsRegistry::AddGaugeFamily(absl::string_view name, absl::string_view help,
                                             std::vector<std::string> label_names) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kGauge, label_names, {}, &created);
  if (created) {
    e->labelled = true;
    e->gauge_family.reset(
        new GaugeFamily(std::move(label_names), [] { return std::make_unique<Gauge>(); }));
  }
  FRESHET_CHECK(e->labelled);
  return e->gauge_family.get();
}

HistogramFamily* MetricsRegistry::AddHistogramFamily(absl::string_view name, absl::string_view help,
                                                     std::vector<std::string> label_names,
                                                     std::vector<double> upper_bounds) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kHistogram, label_names, upper_bounds, &created);
  if (created) {
    e->labelled = true;
    // Check the bounds now rather than at the first child.
    Histogram check(upper_bounds);
    e->histogram_family.reset(new HistogramFamily(
        std::move(label_names),
        [bounds = std::move(upper_bounds)] { return std::make_unique<Histogram>(bounds); }));
  }
  FRESHET_CHECK(e->labelled);
  return e->histogram_family.get();
}

void MetricsRegistry::AddCallbackGauge(absl::string_view name, absl::string_view help,
                                       std::function<double()> fn) {
  MutexLock lock(&mu_);
  bool created = false;
  Entry* e = FindOrAdd(name, help, kCallbackGauge, {}, {}, &created);
  e->callback = std::move(fn);
}

void MetricsRegistry::RemoveCallbackGauge(absl::string_view name) {
  MutexLock lock(&mu_);
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const std::unique_ptr<Entry>& e) {
                                  return e->type == kCallbackGauge && e->name == name;
                                }),
                 entries_.end());
}

std::string MetricsRegistry::RenderText() const {
  std::string out;
  MutexLock lock(&mu_);
  for (const auto& entry : entries_) {
    const Entry& e = *entry;
    absl::StrAppend(&out, "# HELP ", e.name, " ", EscapeHelp(e.help), "\n");
    absl::StrAppend(&out, "# TYPE ", e.name, " ", TypeName(e.type), "\n");
    switch (e.type) {
      case kCounter:
        if (e.labelled) {
          e.counter_family->ForEach([&](const CounterFamily::Child& c) {
            absl::StrAppend(&out, e.name, CloseLabels(LabelPrefix(e.label_names, c.values)), " ",
                            c.metric->Value(), "\n");
          });
        } else {
          absl::StrAppend(&out, e.name, " ", e.counter->Value(), "\n");
        }
        break;
      case kGauge:
        if (e.labelled) {
          e.gauge_family->ForEach([&](const GaugeFamily::Child& c) {
            absl::StrAppend(&out, e.name, CloseLabels(LabelPrefix(e.label_names, c.values)), " ",
                            FormatMetricValue(c.metric->Value()), "\n");
          });
        } else {
          absl::StrAppend(&out, e.name, " ", FormatMetricValue(e.gauge->Value()), "\n");
        }
        break;
      case kHistogram:
        if (e.labelled) {
          e.histogram_family->ForEach([&](const HistogramFamily::Child& c) {
            RenderHistogram(e.name, LabelPrefix(e.label_names, c.values), *c.metric, &out);
          });
        } else {
          RenderHistogram(e.name, "", *e.histogram, &out);
        }
        break;
      case kCallbackGauge:
        absl::StrAppend(&out, e.name, " ", FormatMetricValue(e.callback ? e.callback() : 0.0),
                        "\n");
        break;
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

}  // namespace freshet::serving
