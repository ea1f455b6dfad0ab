// Learner: the online learning state of one model — id dictionaries, user histories, popularity and
// the algorithm's parameters — updated one event at a time and queried for recommendations. The
// replay evaluator and the server use this same class.
#ifndef FRESHET_LEARNER_LEARNER_H_
#define FRESHET_LEARNER_LEARNER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/id_dictionary.h"
#include "learner/model.h"
#include "learner/popularity.h"
#include "learner/user_history.h"
#include "stream/event.h"

namespace freshet::learner {

// The algorithms Learner::Create accepts.
const std::vector<std::string>& AlgorithmNames();

struct Recommendation {
  std::vector<kernels::ScoredItem> items;
  bool personalized = false;  // false: popularity (unknown user, or the popularity model)
};

// Per-user counters.
struct UserStats {
  int64_t events = 0;
  int64_t last_ts_ms = 0;
};

// Not thread-safe: callers serialise Apply() and Recommend().
class Learner {
 public:
  // `algorithm` is one of AlgorithmNames(); InvalidArgument otherwise. `backend` must outlive the
  // learner.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend);

  // Learns from one event; new users and items join the dictionaries. Events must be valid (the
  // sources reject malformed ones): non-empty ids, finite non-negative weight.
  void Apply(const stream::Event& event);

  // Top-k items for an external user id. Unknown users get popularity. With exclude_seen, items in
  // the user's history are left out. InvalidArgument for k < 1.
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         Recommendation* out) const;

  const IdDictionary& users() const { return users_; }
  const IdDictionary& items() const { return items_; }
  const Popularity& popularity() const { return popularity_; }
  const UserHistory& history(int32_t user_row) const { return histories_[user_row]; }
  const UserStats& user_stats(int32_t user_row) const { return user_stats_[user_row]; }
  int64_t events_applied() const { return events_applied_; }
  const std::string& algorithm() const { return algorithm_; }

 private:
  Learner(std::string algorithm, const config::Config& config, const kernels::Backend* backend);

  const std::string algorithm_;
  const config::Config config_;
  const kernels::Backend* backend_;
  IdDictionary users_;
  IdDictionary items_;
  std::vector<UserHistory> histories_;
  std::vector<UserStats> user_stats_;
  Popularity popularity_;
  std::unique_ptr<Model> model_;
  int64_t events_applied_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_LEARNER_H_
