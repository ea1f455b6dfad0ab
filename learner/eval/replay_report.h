// The replay report: report.json (machine-readable), report.html (a self-contained page with an
// SVG plot of Recall@K over the stream, the summary table, and per model the breakdowns by event
// type and user activity and the stability figure, with SVG bar charts of them) and the terminal
// summary table.
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
//                        "seconds",
//                        "by_type": {"<event type>": {"evaluated", "recall", "ndcg"}},
//                        "by_user_activity": {"first_events": int,
//                                             "first": {"evaluated", "recall", "ndcg"},
//                                             "later": {"evaluated", "recall", "ndcg"}},
//                        "stability": {"mean_overlap", "pairs", "sample_every", "seconds"}}},
//  "windows": [{"begin_event", "end_event", "begin_ts_ms", "end_ts_ms",
//               "models": {"<name>": {"recall", "ndcg", "mrr", "coverage", "evaluated",
//                                     "events_per_sec", "seconds"}}}]}
// The breakdowns are over the whole stream (prequential_evaluator.h defines them). "by_type" has
// one member per event type that had a ranked event, under the type's name ("" for no type; a
// MovieLens file's events all have the type "rating"), even when there is only one. "first" is
// the ranked events a user made before having made "first_events" events (any event counts,
// ranked or not), "later" the others. "stability": "mean_overlap" is the mean top-K overlap
// between a sampled user's list right after the user's event was learnt and the user's list at
// the next ranked event (null when "pairs" is 0), for users whose id's FNV-1a hash is 0 modulo
// "sample_every" (0: not measured); "seconds" is the time spent on it, left out of "seconds" and
// "events_per_sec" above.
std::string ReportToJson(const ReplayReport& report);

// A self-contained HTML page (inline SVG and CSS, no scripts, no external resources).
std::string ReportToHtml(const ReplayReport& report);

// A fixed-width table, one row per model, for the terminal; when the replay was evaluated, a
// second one with the user activity breakdown and the stability figure.
std::string SummaryTable(const ReplayReport& report);

// Creates `dir` if needed and writes report.json and report.html into it. Internal/NotFound etc.
// with the path on failure.
absl::Status WriteReport(const ReplayReport& report, const std::string& dir);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EVAL_REPLAY_REPORT_H_
