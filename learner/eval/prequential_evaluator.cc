#include "learner/eval/prequential_evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace freshet::learner {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Running sums for one span of the stream.
struct Accumulator {
  int64_t events = 0;
  int64_t evaluated = 0;
  int64_t hits = 0;
  double ndcg = 0;
  double rr = 0;
  std::vector<bool> recommended;  // by item row
  int64_t distinct_recommended = 0;

  void Mark(int32_t item) {
    if (item >= static_cast<int32_t>(recommended.size())) recommended.resize(item + 1, false);
    if (!recommended[item]) {
      recommended[item] = true;
      ++distinct_recommended;
    }
  }

  ReplayMetrics Finish(int32_t catalog, double seconds) const {
    ReplayMetrics m;
    m.events = events;
    m.evaluated = evaluated;
    if (evaluated > 0) {
      m.recall = static_cast<double>(hits) / static_cast<double>(evaluated);
      m.ndcg = ndcg / static_cast<double>(evaluated);
      m.mrr = rr / static_cast<double>(evaluated);
    }
    m.coverage = catalog > 0 ? static_cast<double>(distinct_recommended) / catalog : 0.0;
    m.seconds = seconds;
    m.events_per_sec = seconds > 0 ? static_cast<double>(events) / seconds : 0.0;
    return m;
  }
};

}  // namespace

absl::StatusOr<ReplayRun> RunPrequential(Learner& learner, stream::EventSource& source,
                                         const EvaluatorOptions& options) {
  if (options.k < 1) return absl::InvalidArgumentError("k must be at least 1");
  const int num_windows = std::max(1, options.windows);
  const int64_t total_events = std::max<int64_t>(options.total_events, 1);

  ReplayRun run;
  run.model = learner.algorithm();
  Accumulator all, window;
  ReplayWindow current;
  Recommendation recs;
  std::vector<stream::Event> batch;
  batch.reserve(4096);

  const Clock::time_point start = Clock::now();
  Clock::time_point window_start = start;
  Clock::time_point last_progress = start;
  int64_t index = 0;
  int window_index = 0;
  int64_t window_end = total_events / num_windows;

  auto close_window = [&](int64_t end_ts) {
    current.end_event = index;
    current.end_ts_ms = end_ts;
    current.metrics = window.Finish(learner.items().size(), SecondsSince(window_start));
    run.windows.push_back(current);
    window = Accumulator{};
    window_start = Clock::now();
    current = ReplayWindow{};
    current.begin_event = index;
  };

  int64_t last_ts = 0;
  while (!source.Finished()) {
    batch.clear();
    FRESHET_RETURN_IF_ERROR(source.Poll(4096, absl::ZeroDuration(), &batch));
    const size_t polled = batch.size();
    if (!options.evaluate) {
      // Learning only: whole batches (split at window ends) through the batched learner.
      size_t done = 0;
      while (done < batch.size()) {
        const size_t take = std::min<size_t>(batch.size() - done, window_end - index);
        if (window.events == 0) current.begin_ts_ms = batch[done].ts_ms;
        learner.ApplyBatch(absl::MakeConstSpan(batch.data() + done, take));
        done += take;
        all.events += take;
        window.events += take;
        index += take;
        last_ts = batch[done - 1].ts_ms;
        if (index >= window_end && window_index < num_windows - 1) {
          close_window(last_ts);
          ++window_index;
          window_end = total_events * (window_index + 1) / num_windows;
        }
      }
      batch.clear();
    }
    for (const stream::Event& event : batch) {
      if (window.events == 0) current.begin_ts_ms = event.ts_ms;
      if (options.evaluate) {
        const int32_t item = learner.items().Find(event.item);
        const int32_t user = learner.users().Find(event.user);
        if (item != IdDictionary::kMissing &&
            (user == IdDictionary::kMissing || !learner.history(user).HasSeen(item))) {
          FRESHET_RETURN_IF_ERROR(learner.Recommend(event.user, options.k, true, &recs));
          ++all.evaluated;
          ++window.evaluated;
          for (size_t r = 0; r < recs.items.size(); ++r) {
            all.Mark(recs.items[r].item);
            window.Mark(recs.items[r].item);
            if (recs.items[r].item == item) {
              const double rank = static_cast<double>(r + 1);
              ++all.hits;
              ++window.hits;
              all.ndcg += 1.0 / std::log2(rank + 1.0);
              window.ndcg += 1.0 / std::log2(rank + 1.0);
              all.rr += 1.0 / rank;
              window.rr += 1.0 / rank;
            }
          }
        }
      }
      learner.Apply(event);
      ++all.events;
      ++window.events;
      ++index;
      last_ts = event.ts_ms;
      if (index >= window_end && window_index < num_windows - 1) {
        close_window(last_ts);
        ++window_index;
        window_end = total_events * (window_index + 1) / num_windows;
      }
    }
    if (options.progress && SecondsSince(last_progress) >= 0.1) {
      last_progress = Clock::now();
      options.progress(ReplayProgress{index, options.total_events, SecondsSince(start)});
    }
    if (polled == 0 && !source.Finished()) {
      return absl::FailedPreconditionError(
          absl::StrCat("source ", source.Name(), " delivered nothing but is not finished; replay "
                       "needs a finite source"));
    }
  }
  if (window.events > 0 || run.windows.empty()) close_window(last_ts);
  run.total = all.Finish(learner.items().size(), SecondsSince(start));
  if (options.progress) {
    options.progress(ReplayProgress{index, options.total_events, run.total.seconds});
  }
  return run;
}

}  // namespace freshet::learner
