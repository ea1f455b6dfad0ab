#include "learner/eval/replay_report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/json_writer.h"

namespace freshet::learner {
namespace {

// The members of one metrics object (the caller opens and closes it).
void MetricFields(const ReplayMetrics& m, JsonWriter& w) {
  w.Key("recall").Double(m.recall);
  w.Key("ndcg").Double(m.ndcg);
  w.Key("mrr").Double(m.mrr);
  w.Key("coverage").Double(m.coverage);
  w.Key("evaluated").Int(m.evaluated);
  w.Key("events_per_sec").Double(m.events_per_sec);
  w.Key("seconds").Double(m.seconds);
}

void MetricsToJson(const ReplayMetrics& m, JsonWriter& w) {
  w.BeginObject();
  MetricFields(m, w);
  w.EndObject();
}

void SliceToJson(const SliceMetrics& m, JsonWriter& w) {
  w.BeginObject();
  w.Key("evaluated").Int(m.evaluated);
  w.Key("recall").Double(m.recall);
  w.Key("ndcg").Double(m.ndcg);
  w.EndObject();
}

// The whole stream's figures of one model: the metrics, the breakdowns, the stability figure.
void RunTotalToJson(const ReplayRun& run, JsonWriter& w) {
  w.BeginObject();
  MetricFields(run.total, w);
  w.Key("by_type").BeginObject();
  for (const auto& [type, slice] : run.by_type) {
    w.Key(type);
    SliceToJson(slice, w);
  }
  w.EndObject();
  w.Key("by_user_activity").BeginObject();
  w.Key("first_events").Int(run.early_events_limit);
  w.Key("first");
  SliceToJson(run.early_events, w);
  w.Key("later");
  SliceToJson(run.later_events, w);
  w.EndObject();
  w.Key("stability").BeginObject();
  if (run.stability.pairs > 0) {
    w.Key("mean_overlap").Double(run.stability.mean_overlap);
  } else {
    w.Key("mean_overlap").Null();
  }
  w.Key("pairs").Int(run.stability.pairs);
  w.Key("sample_every").Int(run.stability.sample_every);
  w.Key("seconds").Double(run.stability.seconds);
  w.EndObject();
  w.EndObject();
}

size_t WindowCount(const ReplayReport& report) {
  size_t n = 0;
  for (const ReplayRun& run : report.runs) n = std::max(n, run.windows.size());
  return n;
}

std::string HtmlEscape(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

constexpr const char* kColors[] = {"#1b6ca8", "#d1495b", "#2e933c", "#edae49",
                                   "#66468f", "#00798c", "#8c564b", "#444444"};

// Model m's colour in every plot.
const char* ModelColor(size_t m) { return kColors[m % (sizeof(kColors) / sizeof(kColors[0]))]; }

// What every plot shares: the opening tag, the value grid (five steps up to `max_value`, labelled
// left of the plot) and a model's entry in the legend right of it.
std::string SvgOpen(double width, double height) {
  return absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
      width, height, width, height);
}

template <typename Y>
void AppendValueGrid(std::string* svg, double left, double plot_w, double max_value, Y y) {
  for (int t = 0; t <= 5; ++t) {
    const double v = max_value * t / 5.0;
    absl::StrAppendFormat(svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n",
                          left, y(v), left + plot_w, y(v), left - 6, y(v) + 4, v);
  }
}

void AppendLegendEntry(std::string* svg, double legend_x, double top, size_t m,
                       absl::string_view model) {
  absl::StrAppendFormat(svg,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                        legend_x, top + 10 + 18.0 * m, ModelColor(m), legend_x + 16,
                        top + 15 + 18.0 * m, HtmlEscape(model));
}

std::string RecallPlotSvg(const ReplayReport& report) {
  const double width = 760, height = 320, left = 56, right = 130, top = 16, bottom = 40;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double max_recall = 0;
  int64_t max_event = 1;
  for (const ReplayRun& run : report.runs) {
    for (const ReplayWindow& w : run.windows) {
      max_recall = std::max(max_recall, w.metrics.recall);
      max_event = std::max(max_event, w.end_event);
    }
  }
  max_recall = max_recall <= 0 ? 1.0 : std::ceil(max_recall * 10.0 + 0.5) / 10.0;
  auto x = [&](double e) { return left + plot_w * e / static_cast<double>(max_event); };
  auto y = [&](double r) { return top + plot_h * (1.0 - r / max_recall); };

  std::string svg = SvgOpen(width, height);
  // Axes and grid.
  AppendValueGrid(&svg, left, plot_w, max_recall, y);
  for (int t = 0; t <= 4; ++t) {
    const double e = static_cast<double>(max_event) * t / 4.0;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n",
                          x(e), top + plot_h + 16, e);
  }
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#888\"/>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
                        "events replayed</text>\n<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 "
                        "14 %.1f)\" text-anchor=\"middle\">Recall@%d per window</text>\n",
                        left, top, plot_w, plot_h, left + plot_w / 2, height - 6, top + plot_h / 2,
                        top + plot_h / 2, report.k);
  for (size_t m = 0; m < report.runs.size(); ++m) {
    const ReplayRun& run = report.runs[m];
    std::string points;
    for (const ReplayWindow& w : run.windows) {
      const double mid = 0.5 * static_cast<double>(w.begin_event + w.end_event);
      absl::StrAppendFormat(&points, "%.1f,%.1f ", x(mid), y(w.metrics.recall));
    }
    absl::StrAppendFormat(&svg,
                          "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                          "points=\"%s\"/>\n",
                          ModelColor(m), points);
    AppendLegendEntry(&svg, left + plot_w + 12, top, m, run.model);
  }
  svg += "</svg>\n";
  return svg;
}

std::string TypeLabel(absl::string_view type) {
  return type.empty() ? std::string("(no type)") : absl::StrCat("type ", HtmlEscape(type));
}

// The slices of the breakdown, in the order the page shows them.
struct Slice {
  std::string label;  // HTML
  std::function<const SliceMetrics*(const ReplayRun&)> get;
};

std::vector<Slice> Slices(const ReplayReport& report) {
  std::vector<Slice> slices;
  const int first = report.runs.empty() ? 0 : report.runs.front().early_events_limit;
  slices.push_back({absl::StrCat("user's first ", first, " events"),
                    [](const ReplayRun& run) { return &run.early_events; }});
  slices.push_back({"later events", [](const ReplayRun& run) { return &run.later_events; }});
  std::vector<std::string> types;
  for (const ReplayRun& run : report.runs) {
    for (const auto& [type, slice] : run.by_type) {
      if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
    }
  }
  std::sort(types.begin(), types.end());
  for (const std::string& type : types) {
    slices.push_back({TypeLabel(type), [type](const ReplayRun& run) -> const SliceMetrics* {
                        for (const auto& [t, slice] : run.by_type) {
                          if (t == type) return &slice;
                        }
                        return nullptr;
                      }});
  }
  return slices;
}

// Grouped bars in the style of the recall plot: one group per category, one bar per model (a
// negative value: no bar), the models' colours and legend as there.
std::string BarChartSvg(const ReplayReport& report, const std::vector<std::string>& categories,
                        const std::function<double(const ReplayRun&, size_t)>& value,
                        const std::string& axis_label) {
  const double width = 760, height = 260, left = 56, right = 130, top = 16, bottom = 40;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double max_value = 0;
  for (const ReplayRun& run : report.runs) {
    for (size_t c = 0; c < categories.size(); ++c) max_value = std::max(max_value, value(run, c));
  }
  max_value = max_value <= 0 ? 1.0 : std::ceil(max_value * 10.0 + 0.5) / 10.0;
  if (max_value > 1.0 && max_value < 1.15) max_value = 1.0;
  auto y = [&](double v) { return top + plot_h * (1.0 - v / max_value); };
  std::string svg = SvgOpen(width, height);
  AppendValueGrid(&svg, left, plot_w, max_value, y);
  const double group_w = plot_w / static_cast<double>(std::max<size_t>(1, categories.size()));
  const double bar_w = group_w * 0.8 / static_cast<double>(std::max<size_t>(1, report.runs.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double group_left = left + group_w * static_cast<double>(c) + group_w * 0.1;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                          left + group_w * (static_cast<double>(c) + 0.5), top + plot_h + 16,
                          categories[c]);
    for (size_t m = 0; m < report.runs.size(); ++m) {
      const double v = value(report.runs[m], c);
      if (!(v >= 0)) continue;
      absl::StrAppendFormat(&svg,
                            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                            "fill=\"%s\"><title>%s: %.4f</title></rect>\n",
                            group_left + bar_w * static_cast<double>(m), y(v), bar_w * 0.9,
                            top + plot_h - y(v), ModelColor(m), HtmlEscape(report.runs[m].model),
                            v);
    }
  }
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#888\"/>\n<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 "
                        "14 %.1f)\" text-anchor=\"middle\">%s</text>\n",
                        left, top, plot_w, plot_h, top + plot_h / 2, top + plot_h / 2, axis_label);
  for (size_t m = 0; m < report.runs.size(); ++m) {
    AppendLegendEntry(&svg, left + plot_w + 12, top, m, report.runs[m].model);
  }
  svg += "</svg>\n";
  return svg;
}

// The breakdowns and the stability figure: the charts, then one table per model.
std::string BreakdownHtml(const ReplayReport& report) {
  const std::vector<Slice> slices = Slices(report);
  std::vector<std::string> labels;
  for (const Slice& slice : slices) labels.push_back(slice.label);
  std::string html = absl::StrCat(
      "<h2>By user activity and event type</h2>\n<p>Ranked events split by how many events the "
      "user had made before (any event counts) and by the event's type; every figure is over the "
      "whole stream.</p>\n",
      BarChartSvg(
          report, labels,
          [&](const ReplayRun& run, size_t c) {
            const SliceMetrics* m = slices[c].get(run);
            return m == nullptr || m->evaluated == 0 ? -1.0 : m->ndcg;
          },
          absl::StrCat("NDCG@", report.k)));
  int sample_every = 0;
  for (const ReplayRun& run : report.runs)
    sample_every = std::max(sample_every, run.stability.sample_every);
  absl::StrAppend(
      &html, "<h2>Stability</h2>\n<p>For users whose id's FNV-1a hash is 0 modulo ", sample_every,
      ", the top-", report.k,
      " made right after each of the user's events is learnt is compared with the user's ranking "
      "at the next ranked event, before it is learnt: only other users' events were learnt in "
      "between. Overlap: |A &cap; B| / max(|A|, |B|); 1 means other users' learning left the "
      "list as it was.</p>\n",
      BarChartSvg(
          report, {absl::StrCat("mean top-", report.k, " overlap")},
          [](const ReplayRun& run, size_t) {
            return run.stability.pairs > 0 ? run.stability.mean_overlap : -1.0;
          },
          "overlap"));
  for (const ReplayRun& run : report.runs) {
    absl::StrAppend(&html, "<h3>", HtmlEscape(run.model),
                    "</h3>\n<table><tr><th>ranked events</th><th>evaluated</th><th>Recall@",
                    report.k, "</th><th>NDCG@", report.k, "</th></tr>\n");
    absl::StrAppendFormat(&html, "<tr><td>all</td><td>%d</td><td>%.4f</td><td>%.4f</td></tr>\n",
                          run.total.evaluated, run.total.recall, run.total.ndcg);
    for (const Slice& slice : slices) {
      const SliceMetrics* m = slice.get(run);
      if (m == nullptr) continue;
      absl::StrAppendFormat(&html, "<tr><td>%s</td><td>%d</td><td>%.4f</td><td>%.4f</td></tr>\n",
                            slice.label, m->evaluated, m->recall, m->ndcg);
    }
    html += "</table>\n";
    if (run.stability.pairs > 0) {
      absl::StrAppendFormat(&html,
                            "<p>Stability: mean top-%d overlap %.4f over %d pairs (users sampled "
                            "1 in %d by id hash).</p>\n",
                            report.k, run.stability.mean_overlap, run.stability.pairs,
                            run.stability.sample_every);
    } else {
      html += "<p>Stability: not measured (no pairs).</p>\n";
    }
  }
  return html;
}

}  // namespace

std::string ReportToJson(const ReplayReport& report) {
  JsonWriter w;
  w.BeginObject();
  w.Key("dataset").String(report.dataset);
  w.Key("events").Int(report.events);
  w.Key("k").Int(report.k);
  w.Key("malformed").Int(report.malformed);
  w.Key("models").BeginObject();
  for (const ReplayRun& run : report.runs) {
    w.Key(run.model);
    RunTotalToJson(run, w);
  }
  w.EndObject();
  w.Key("windows").BeginArray();
  const size_t windows = WindowCount(report);
  for (size_t i = 0; i < windows; ++i) {
    const ReplayWindow* first = nullptr;
    for (const ReplayRun& run : report.runs) {
      if (i < run.windows.size()) {
        first = &run.windows[i];
        break;
      }
    }
    w.BeginObject();
    w.Key("begin_event").Int(first->begin_event);
    w.Key("end_event").Int(first->end_event);
    w.Key("begin_ts_ms").Int(first->begin_ts_ms);
    w.Key("end_ts_ms").Int(first->end_ts_ms);
    w.Key("models").BeginObject();
    for (const ReplayRun& run : report.runs) {
      if (i >= run.windows.size()) continue;
      w.Key(run.model);
      MetricsToJson(run.windows[i].metrics, w);
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.str() + "\n";
}

std::string SummaryTable(const ReplayReport& report) {
  std::string out = absl::StrFormat("%-12s %9s %9s %9s %9s %10s %14s\n", "model",
                                    absl::StrCat("recall@", report.k), "ndcg", "mrr", "coverage",
                                    "evaluated", "events/s");
  for (const ReplayRun& run : report.runs) {
    const ReplayMetrics& m = run.total;
    absl::StrAppendFormat(&out, "%-12s %9.4f %9.4f %9.4f %9.4f %10d %14.0f\n", run.model, m.recall,
                          m.ndcg, m.mrr, m.coverage, m.evaluated, m.events_per_sec);
  }
  if (!report.evaluated) return out;
  const int first = report.runs.empty() ? 0 : report.runs.front().early_events_limit;
  absl::StrAppendFormat(&out, "\n%-12s %12s %12s %12s %12s %10s %9s\n", "model",
                        absl::StrCat("first", first, " rec"), absl::StrCat("first", first, " ndcg"),
                        "later rec", "later ndcg", "stability", "pairs");
  for (const ReplayRun& run : report.runs) {
    absl::StrAppendFormat(&out, "%-12s %12.4f %12.4f %12.4f %12.4f %10.4f %9d\n", run.model,
                          run.early_events.recall, run.early_events.ndcg, run.later_events.recall,
                          run.later_events.ndcg, run.stability.mean_overlap, run.stability.pairs);
  }
  return out;
}

std::string ReportToHtml(const ReplayReport& report) {
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>freshet replay: ",
      HtmlEscape(report.dataset),
      "</title>\n<style>"
      "body{font-family:sans-serif;margin:2em;color:#222}"
      "table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;"
      "text-align:right}th:first-child,td:first-child{text-align:left}</style></head><body>\n"
      "<h1>freshet replay</h1>\n<p>Data: <code>",
      HtmlEscape(report.dataset), "</code>, ", report.events, " events",
      report.malformed > 0 ? absl::StrCat(" (", report.malformed, " malformed records skipped)")
                           : "",
      ". Protocol: time order, test-then-train on every event whose item is known and new to the "
      "user, top-",
      report.k, " with the user's seen items excluded.</p>\n");
  if (report.evaluated) {
    absl::StrAppend(&html, "<h2>Recall@", report.k, " over the stream</h2>\n",
                    RecallPlotSvg(report));
  }
  absl::StrAppend(&html, "<h2>Summary</h2>\n<table><tr><th>model</th><th>Recall@", report.k,
                  "</th><th>NDCG@", report.k, "</th><th>MRR@", report.k,
                  "</th><th>coverage</th><th>evaluated</th><th>events/s</th></tr>\n");
  for (const ReplayRun& run : report.runs) {
    const ReplayMetrics& m = run.total;
    absl::StrAppendFormat(&html,
                          "<tr><td>%s</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td>"
                          "<td>%d</td><td>%.0f</td></tr>\n",
                          HtmlEscape(run.model), m.recall, m.ndcg, m.mrr, m.coverage, m.evaluated,
                          m.events_per_sec);
  }
  html += "</table>\n";
  if (report.evaluated) html += BreakdownHtml(report);
  html += "</body></html>\n";
  return html;
}

absl::Status WriteReport(const ReplayReport& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create report directory '", dir, "': ", ec.message()));
  }
  const std::pair<const char*, std::string> files[] = {{"report.json", ReportToJson(report)},
                                                       {"report.html", ReportToHtml(report)}};
  for (const auto& [name, text] : files) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      return absl::UnavailableError(
          absl::StrCat("cannot write '", path, "': ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace freshet::learner
