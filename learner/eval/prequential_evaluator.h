// PrequentialEvaluator: replays a finite event stream through a Learner, test-then-train, and
// measures ranking quality (ARCHITECTURE.md, "Evaluation protocol"):
//
// For each event (u, i) in stream order: if i is already in the catalog and u has not interacted
// with i before, the learner's own Recommend(u, K, exclude_seen=true) is asked for K items and the
// event is a hit when i is among them at rank r (1-based): Recall@K counts hits, NDCG@K adds
// 1/log2(r+1), MRR@K adds 1/r. Then the learner learns from the event. Unknown users are answered
// by the learner's popularity fallback, exactly as in serving.
//
// Breakdowns of the whole stream's ranked events (the protocol above is unchanged by them):
// - by event type (`Event::type`, e.g. view / cart / purchase; every type is reported under its
//   own name, even when the stream has only one, such as MovieLens' "rating"; "" is no type);
// - by user activity: events a user made before this one (all of them, ranked or not) fewer than
//   `EvaluatorOptions::early_events` (5: the user's first 5 events) versus the rest.
// Stability: for a sample of users (those whose id hashes, FNV-1a 64, to 0 modulo
// `stability_every`), the top-K the learner gives the user right after learning each of the
// user's events is kept (one list per sampled user). At the user's next ranked event, before the
// event is learnt, the ranking made for the protocol is compared with the kept list: nothing of
// the user was learnt in between (same history, same exclusions), only other users' events, so
// the overlap |A ∩ B| / max(|A|, |B|) (= |A ∩ B| / K whenever K unseen items exist) says how much
// other users' learning moved the user's list. The mean over all such pairs is reported. Costs
// one more Recommend() per event of a sampled user. With a micro-batching model the kept list may
// be made before the user's event is learnt (Apply() may hold it).
#ifndef FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_
#define FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
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

// Ranking quality of one subset of the ranked events.
struct SliceMetrics {
  int64_t evaluated = 0;
  double recall = 0;  // hits / evaluated (0 when nothing was evaluated)
  double ndcg = 0;    // mean of 1/log2(rank+1), misses 0
};

struct StabilityMetrics {
  int64_t pairs = 0;        // (kept list, ranking) pairs compared
  double mean_overlap = 0;  // mean of |A ∩ B| / max(|A|, |B|) over the pairs (0 when none)
  int sample_every = 0;     // users sampled: FNV-1a(id) % sample_every == 0; 0: not measured
  double seconds = 0;       // spent making the kept lists (left out of the run's `seconds`)
};

struct ReplayRun {
  std::string model;
  ReplayMetrics total;
  std::vector<ReplayWindow> windows;
  // Whole-stream breakdowns (empty / zero with evaluate = false).
  std::vector<std::pair<std::string, SliceMetrics>> by_type;  // sorted by type name
  SliceMetrics early_events;   // the user had made fewer than early_events events before this one
  SliceMetrics later_events;   // the user had made early_events or more
  int early_events_limit = 0;  // EvaluatorOptions::early_events of the run
  StabilityMetrics stability;
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
  int early_events = 5;      // user activity buckets: fewer earlier events of the user, or more
  // Stability is measured for users whose id's FNV-1a hash is 0 modulo this (1: every user);
  // 0 turns it off.
  int stability_every = 10;
  // Called about every 0.1 s of wall time, and once at the end.
  std::function<void(const ReplayProgress&)> progress;
};

// Runs `learner` over everything `source` delivers. The source must be finite. Stateless: one
// evaluator may run any number of (learner, source) pairs, one at a time.
absl::StatusOr<ReplayRun> RunPrequential(Learner& learner, stream::EventSource& source,
                                         const EvaluatorOptions& options);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EVAL_PREQUENTIAL_EVALUATOR_H_
