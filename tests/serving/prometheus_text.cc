#include "tests/serving/prometheus_text.h"

#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace freshet::serving::testing {
namespace {

absl::Status Bad(int line_no, absl::string_view line, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line_no, " '", line, "': ", why));
}

bool ParseValue(absl::string_view text, double* value) {
  if (text == "+Inf") {
    *value = std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "-Inf") {
    *value = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "NaN") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  return absl::SimpleAtod(text, value);
}

// The family a sample name belongs to, given the declared families.
std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (absl::EndsWith(name, suffix)) {
      std::string base = name.substr(0, name.size() - suffix.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<Sample>> ParsePrometheusText(absl::string_view text) {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    if (absl::StartsWith(line, "# HELP ")) {
      std::vector<std::string> parts = absl::StrSplit(line.substr(7), absl::MaxSplits(' ', 1));
      if (!helps.insert(parts[0]).second) return Bad(line_no, line, "second HELP");
      continue;
    }
    if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line.substr(7), ' ');
      if (parts.size() != 2) return Bad(line_no, line, "TYPE needs a name and a type");
      if (parts[1] != "counter" && parts[1] != "gauge" && parts[1] != "histogram" &&
          parts[1] != "summary" && parts[1] != "untyped") {
        return Bad(line_no, line, "unknown type");
      }
      if (!types.emplace(parts[0], parts[1]).second) return Bad(line_no, line, "second TYPE");
      continue;
    }
    if (line[0] == '#') continue;
    Sample sample;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = std::string(line.substr(0, i));
    if (sample.name.empty()) return Bad(line_no, line, "no metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == absl::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          return Bad(line_no, line, "label needs =\"value\"");
        }
        std::string label_name(line.substr(i, eq - i));
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) return Bad(line_no, line, "dangling backslash");
            const char e = line[++j];
            if (e == 'n') {
              value += '\n';
            } else if (e == '\\' || e == '"') {
              value += e;
            } else {
              return Bad(line_no, line, "bad escape");
            }
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return Bad(line_no, line, "unterminated label value");
        if (!sample.labels.emplace(label_name, value).second) {
          return Bad(line_no, line, "repeated label");
        }
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return Bad(line_no, line, "unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return Bad(line_no, line, "no value");
    if (!ParseValue(line.substr(i + 1), &sample.value)) return Bad(line_no, line, "bad value");
    sample.family = FamilyOf(sample.name, types);
    if (sample.family.empty()) return Bad(line_no, line, "sample before its TYPE line");
    sample.type = types[sample.family];
    samples.push_back(std::move(sample));
  }
  return samples;
}

double FindSample(const std::vector<Sample>& samples, absl::string_view name,
                  const Labels& labels) {
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

absl::Status HistogramsAreConsistent(const std::vector<Sample>& samples) {
  // Series key: family + labels without le.
  std::map<std::string, std::vector<const Sample*>> buckets;
  std::map<std::string, double> counts;
  std::set<std::string> sums;
  for (const Sample& s : samples) {
    if (s.type != "histogram") continue;
    Labels series_labels = s.labels;
    series_labels.erase("le");
    std::string key = s.family;
    for (const auto& [k, v] : series_labels) absl::StrAppend(&key, "|", k, "=", v);
    if (s.name == s.family + "_bucket") {
      if (!s.labels.count("le")) return absl::InvalidArgumentError(key + ": bucket without le");
      buckets[key].push_back(&s);
    } else if (s.name == s.family + "_count") {
      counts[key] = s.value;
    } else if (s.name == s.family + "_sum") {
      sums.insert(key);
    }
  }
  for (const auto& [key, series] : buckets) {
    double previous_le = -std::numeric_limits<double>::infinity();
    double previous_count = 0;
    for (const Sample* b : series) {
      double le = 0;
      if (!ParseValue(b->labels.at("le"), &le)) {
        return absl::InvalidArgumentError(key + ": bad le");
      }
      if (!(le > previous_le)) return absl::InvalidArgumentError(key + ": le not increasing");
      if (b->value < previous_count) return absl::InvalidArgumentError(key + ": not cumulative");
      previous_le = le;
      previous_count = b->value;
    }
    if (!std::isinf(previous_le)) return absl::InvalidArgumentError(key + ": no +Inf bucket");
    if (!counts.count(key) || counts[key] != previous_count) {
      return absl::InvalidArgumentError(key + ": _count differs from the +Inf bucket");
    }
    if (!sums.count(key)) return absl::InvalidArgumentError(key + ": no _sum");
  }
  return absl::OkStatus();
}

}  // namespace freshet::serving::testing
