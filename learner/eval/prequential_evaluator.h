// PrequentialEvaluator: replays a finite event stream through a Learner, test-then-train, and
// measures ranking quality (ARCHITECTURE.md, "Evaluation protocol"):
//
// For each event (u, i) in stream order: if i is already in the catalog and u has not interacted
// with i before, the learner's own Recommend(u, K, exclude_seen=true) is asked for K items and the
// event is a hit when i is among them at rank r (1-based): Recall@K counts hits, NDCG@K adds
// 1/log2(r+1), MRR@K adds 1/r. Then the learner learns from the event. Unknown users are answered
// by the learner's popularity fallback, exactly as in serving.
#ifndef FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_
#define FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "learner/learner.h"
#include "stream/event_source.h"

namespace freshet::learner {

// Quality and speed of one model over the whole stream or one window of it.
struct ReplayMetrics {
  double recall = 0;    // hits / evaluated
  double ndcg = 0;      // mean of 1/log2(rank+1) over evaluated events (0 for misses)
  double mrr = 0;       // mean of 1/rank over evaluated events (0 for misses)
  double coverage = 0;  // distinct items recommended / catalog size at the end of the span
  int64_t evaluated = 0;
  int64_t events = 0;
  double seconds = 0;         // wall time of the span (learning, plus ranking when evaluating)
  double events_per_sec = 0;  // events / seconds
};

// One slice of the stream: events [begin, end) in replay order.
struct ReplayWindow {
  int64_t begin_event = 0;
  int64_t end_event = 0;
  int64_t begin_ts_ms = 0;
  int64_t end_ts_ms = 0;
  ReplayMetrics metrics;
};

struct ReplayRun {
  std::string model;
  ReplayMetrics total;
  std::vector<ReplayWindow> windows;
};

struct ReplayProgress {
  int64_t done = 0;
  int64_t total = 0;
  double seconds = 0;
};

struct EvaluatorOptions {
  int k = 10;
  bool evaluate = true;      // false: learn only (pure learning throughput; nothing is ranked)
  int windows = 20;          // equal slices of `total_events`
  int64_t total_events = 0;  // events the source will deliver (for windows and progress)
  // Called about every 0.1 s of wall time, and once at the end.
  std::function<void(const ReplayProgress&)> progress;
};

// Runs `learner` over everything `source` delivers. The source must be finite. Stateless: one
// evaluator may run any number of (learner, source) pairs, one at a time.
absl::StatusOr<ReplayRun> RunPrequential(Learner& learner, stream::EventSource& source,
                                         const EvaluatorOptions& options);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_
