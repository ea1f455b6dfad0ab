#include "learner/eval/prequential_evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace freshet::learner {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Running sums for one subset of the ranked events.
struct SliceAccumulator {
  int64_t evaluated = 0;
  int64_t hits = 0;
  double ndcg = 0;

  void Add(size_t rank) {
    ++evaluated;
    if (rank == 0) return;
    ++hits;
    ndcg += 1.0 / std::log2(static_cast<double>(rank) + 1.0);
  }

  SliceMetrics Finish() const {
    SliceMetrics m;
    m.evaluated = evaluated;
    if (evaluated > 0) {
      m.recall = static_cast<double>(hits) / static_cast<double>(evaluated);
      m.ndcg = ndcg / static_cast<double>(evaluated);
    }
    return m;
  }
};

// Running sums for one span of the stream: the ranked events' recall and NDCG (as any subset's),
// plus the reciprocal ranks and the items recommended.
struct Accumulator {
  int64_t events = 0;
  SliceAccumulator ranked;
  double rr = 0;
  std::vector<bool> recommended;  // by item row
  int64_t distinct_recommended = 0;

  // One ranked event; rank is 1-based, 0 for a miss.
  void AddEvaluation(size_t rank) {
    ranked.Add(rank);
    if (rank > 0) rr += 1.0 / static_cast<double>(rank);
  }

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
    const SliceMetrics slice = ranked.Finish();
    m.evaluated = slice.evaluated;
    m.recall = slice.recall;
    m.ndcg = slice.ndcg;
    if (slice.evaluated > 0) m.mrr = rr / static_cast<double>(slice.evaluated);
    m.coverage = catalog > 0 ? static_cast<double>(distinct_recommended) / catalog : 0.0;
    m.seconds = seconds;
    m.events_per_sec = seconds > 0 ? static_cast<double>(events) / seconds : 0.0;
    return m;
  }
};

// What the evaluator keeps per user for the breakdowns and the stability figure.
struct UserState {
  int64_t events = 0;         // events of the user replayed so far
  bool sampled = false;       // stability is measured for this user
  bool has_kept = false;      // `kept` holds the top-K made after the user's last event
  std::vector<int32_t> kept;  // item rows
};

uint64_t Fnv1a64(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// |a ∩ b| / max(|a|, |b|); the lists hold distinct items.
double Overlap(absl::Span<const int32_t> a, absl::Span<const int32_t> b) {
  const size_t larger = std::max(a.size(), b.size());
  if (larger == 0) return 1.0;
  size_t common = 0;
  for (const int32_t x : a) common += std::find(b.begin(), b.end(), x) != b.end() ? 1 : 0;
  return static_cast<double>(common) / static_cast<double>(larger);
}

}  // namespace

absl::StatusOr<ReplayRun> RunPrequential(Learner& learner, stream::EventSource& source,
                                         const EvaluatorOptions& options) {
  if (options.k < 1) return absl::InvalidArgumentError("k must be at least 1");
  const int num_windows = std::max(1, options.windows);
  const int64_t total_events = std::max<int64_t>(options.total_events, 1);

  ReplayRun run;
  run.model = learner.algorithm();
  run.early_events_limit = options.early_events;
  run.stability.sample_every = options.evaluate ? std::max(0, options.stability_every) : 0;
  Accumulator all, window;
  std::map<std::string, SliceAccumulator, std::less<>> by_type;
  SliceAccumulator early, later;
  absl::flat_hash_map<std::string, UserState> user_states;
  int64_t stability_pairs = 0;
  double stability_sum = 0;
  Recommendation kept_recs;
  std::vector<int32_t> ranked;
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

  // Time spent making the stability figure's kept lists: left out of the spans' seconds, so that
  // events_per_sec measures the protocol alone.
  double window_stability_s = 0, total_stability_s = 0;
  auto close_window = [&](int64_t end_ts) {
    current.end_event = index;
    current.end_ts_ms = end_ts;
    current.metrics =
        window.Finish(learner.items().size(), SecondsSince(window_start) - window_stability_s);
    window_stability_s = 0;
    run.windows.push_back(current);
    window = Accumulator{};
    window_start = Clock::now();
    current = ReplayWindow{};
    current.begin_event = index;
  };
  // Events that still fit in the current window (at least 1; unbounded in the last window, so a
  // source longer than total_events still ends up in the report).
  auto room = [&]() -> int64_t {
    return window_index < num_windows - 1 ? std::max<int64_t>(1, window_end - index)
                                          : std::numeric_limits<int64_t>::max();
  };
  int64_t last_ts = 0;
  // Counts n events that ended at `ts`, closing the window when it is full.
  auto advance = [&](int64_t n, int64_t ts) {
    all.events += n;
    window.events += n;
    index += n;
    last_ts = ts;
    if (window_index < num_windows - 1 && index >= window_end) {
      close_window(ts);
      ++window_index;
      window_end = total_events * (window_index + 1) / num_windows;
    }
  };

  while (!source.Finished()) {
    batch.clear();
    FRESHET_RETURN_IF_ERROR(source.Poll(4096, absl::ZeroDuration(), &batch));
    if (!options.evaluate) {
      // Learning only: whole batches, split at window ends, through the batched learner.
      size_t done = 0;
      while (done < batch.size()) {
        const size_t take = static_cast<size_t>(
            std::min<int64_t>(static_cast<int64_t>(batch.size() - done), room()));
        if (window.events == 0) current.begin_ts_ms = batch[done].ts_ms;
        learner.ApplyBatch(absl::MakeConstSpan(batch.data() + done, take));
        done += take;
        advance(static_cast<int64_t>(take), batch[done - 1].ts_ms);
      }
    } else {
      for (const stream::Event& event : batch) {
        if (window.events == 0) current.begin_ts_ms = event.ts_ms;
        auto [state_it, new_user] = user_states.try_emplace(event.user);
        UserState& state = state_it->second;
        if (new_user && run.stability.sample_every > 0) {
          state.sampled = Fnv1a64(event.user) % run.stability.sample_every == 0;
        }
        const int32_t item = learner.items().Find(event.item);
        const int32_t user = learner.users().Find(event.user);
        if (item != IdDictionary::kMissing &&
            (user == IdDictionary::kMissing || !learner.history(user).HasSeen(item))) {
          FRESHET_RETURN_IF_ERROR(learner.Recommend(event.user, options.k, true, &recs));
          size_t rank = 0;
          for (size_t r = 0; r < recs.items.size(); ++r) {
            all.Mark(recs.items[r].item);
            window.Mark(recs.items[r].item);
            if (recs.items[r].item == item) rank = r + 1;
          }
          all.AddEvaluation(rank);
          window.AddEvaluation(rank);
          auto type_it = by_type.find(event.type);
          if (type_it == by_type.end())
            type_it = by_type.emplace(event.type, SliceAccumulator{}).first;
          type_it->second.Add(rank);
          (state.events < options.early_events ? early : later).Add(rank);
          if (state.has_kept) {
            ranked.clear();
            for (const kernels::ScoredItem& s : recs.items) ranked.push_back(s.item);
            stability_sum += Overlap(ranked, state.kept);
            ++stability_pairs;
          }
        }
        learner.Apply(event);
        ++state.events;
        if (state.sampled) {
          // The list a request would get now; compared at the user's next ranked event.
          const Clock::time_point kept_start = Clock::now();
          FRESHET_RETURN_IF_ERROR(learner.Recommend(event.user, options.k, true, &kept_recs));
          state.kept.clear();
          for (const kernels::ScoredItem& s : kept_recs.items) state.kept.push_back(s.item);
          state.has_kept = true;
          const double kept_s = SecondsSince(kept_start);
          window_stability_s += kept_s;
          total_stability_s += kept_s;
        }
        advance(1, event.ts_ms);
      }
    }
    if (options.progress && SecondsSince(last_progress) >= 0.1) {
      last_progress = Clock::now();
      options.progress(ReplayProgress{index, options.total_events, SecondsSince(start)});
    }
    if (batch.empty() && !source.Finished()) {
      return absl::FailedPreconditionError(
          absl::StrCat("source ", source.Name(),
                       " delivered nothing but is not finished; replay "
                       "needs a finite source"));
    }
  }
  learner.Flush();
  if (window.events > 0 || run.windows.empty()) close_window(last_ts);
  run.total = all.Finish(learner.items().size(), SecondsSince(start) - total_stability_s);
  for (const auto& [type, slice] : by_type) run.by_type.emplace_back(type, slice.Finish());
  run.early_events = early.Finish();
  run.later_events = later.Finish();
  run.stability.pairs = stability_pairs;
  run.stability.seconds = total_stability_s;
  run.stability.mean_overlap =
      stability_pairs > 0 ? stability_sum / static_cast<double>(stability_pairs) : 0.0;
  if (options.progress) {
    options.progress(ReplayProgress{index, options.total_events, run.total.seconds});
  }
  return run;
}

}  // namespace freshet::learner
