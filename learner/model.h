// Model: one online recommendation algorithm. The Learner owns the shared state (id dictionaries,
// user histories, popularity) and drives a Model through this interface; replay evaluation and
// serving use the same Learner, so they exercise the same code.
#ifndef FRESHET_LEARNER_MODEL_H_
#define FRESHET_LEARNER_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::learner {

// One event, resolved to dense rows, as a Model sees it.
struct Interaction {
  int32_t user = -1;
  int32_t item = -1;
  float weight = 1.0f;
  int64_t ts_ms = 0;
  // The user's latest items before this event, oldest first, newest last (may be empty).
  absl::Span<const int32_t> recent;
  // Items known when this event is applied, its own included (rows [0, catalog)). Models may have
  // been grown further ahead by batched learning; rows at or above this must be ignored.
  int32_t catalog = 0;
};

// A recommendation request for a known user.
struct UserQuery {
  int32_t user = -1;
  absl::Span<const int32_t> recent;   // latest items, oldest first, including every applied event
  absl::Span<const int32_t> exclude;  // item rows never to return, sorted ascending
};

// Not thread-safe: the Learner serialises Learn() against everything else.
class Model {
 public:
  virtual ~Model() = default;

  virtual std::string name() const = 0;

  // The dictionaries grew to `users` users and `items` items; called before the first Learn() that
  // refers to a new row.
  virtual void Grow(int32_t users, int32_t items) = 0;

  // Learns from one event.
  virtual void Learn(const Interaction& event) = 0;

  // Hints that Learn() for this event follows soon, so the rows it reads can be fetched into
  // cache ahead of time. Rows must exist (after Grow()). Optional.
  virtual void Prefetch(const Interaction& /*upcoming*/) const {}

  // Writes the best min(k, available) items for the query into *out, best first (see
  // kernels::RanksBefore).
  virtual absl::Status Recommend(const UserQuery& query, int k,
                                 std::vector<kernels::ScoredItem>* out) const = 0;

  // Dense scores of every item row for the query (scores.size() == catalog size), for blends.
  virtual void ScoreAll(const UserQuery& query, absl::Span<float> scores) const = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_MODEL_H_
