// A parser for the Prometheus text exposition format 0.0.4, strict enough to check what
// MetricsRegistry::RenderText() writes: "# HELP" / "# TYPE" before a family's samples, escaped
// label values, numeric values.
#ifndef FRESHET_TESTS_SERVING_PROMETHEUS_TEXT_H_
#define FRESHET_TESTS_SERVING_PROMETHEUS_TEXT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::serving::testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;    // as written, e.g. "x_bucket"
  std::string family;  // the TYPE'd family it belongs to, e.g. "x"
  std::string type;    // "counter", "gauge", "histogram"
  Labels labels;       // label values unescaped
  double value = 0.0;
};

// InvalidArgument naming the line when the text does not parse, a sample has no preceding TYPE
// line, or a family's HELP/TYPE appears twice.
absl::StatusOr<std::vector<Sample>> ParsePrometheusText(absl::string_view text);

// The value of the sample with this name and exactly these labels; NaN when there is none.
double FindSample(const std::vector<Sample>& samples, absl::string_view name, const Labels& labels);

// For every histogram series: buckets in increasing le order, cumulative (non-decreasing), the
// last one le="+Inf" and equal to _count, and a _sum present. InvalidArgument says what is wrong.
absl::Status HistogramsAreConsistent(const std::vector<Sample>& samples);

}  // namespace freshet::serving::testing

#endif  // FRESHET_TESTS_SERVING_PROMETHEUS_TEXT_H_
