// The replay report: report.json (machine-readable), report.html (a self-contained page with an
// SVG plot of Recall@K over the stream and the summary table) and the terminal summary table.
#ifndef FRESHET_LEARNER_EVAL_REPLAY_REPORT_H_
#define FRESHET_LEARNER_EVAL_REPLAY_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "learner/eval/prequential_evaluator.h"

namespace freshet::learner {

struct ReplayReport {
  std::string dataset;  // what was replayed (file name)
  int64_t events = 0;
  int k = 10;
  bool evaluated = true;
  int64_t malformed = 0;        // input records the source skipped
  std::vector<ReplayRun> runs;  // in the order they ran
};

// report.json:
// {"dataset": str, "events": int, "k": int, "malformed": int,
//  "models": {"<name>": {"recall", "ndcg", "mrr", "coverage", "evaluated", "events_per_sec",
//                        "seconds"}},
//  "windows": [{"begin_event", "end_event", "begin_ts_ms", "end_ts_ms",
//               "models": {"<name>": {same keys}}}]}
std::string ReportToJson(const ReplayReport& report);

// A self-contained HTML page (inline SVG and CSS, no scripts, no external resources).
std::string ReportToHtml(const ReplayReport& report);

// A fixed-width table, one row per model, for the terminal.
std::string SummaryTable(const ReplayReport& report);

// Creates `dir` if needed and writes report.json and report.html into it. Internal/NotFound etc.
// with the path on failure.
absl::Status WriteReport(const ReplayReport& report, const std::string& dir);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EVAL_REPLAY_REPORT_H_
