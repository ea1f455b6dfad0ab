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
#include "common/huge_page_allocator.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/id_dictionary.h"
#include "learner/model.h"
#include "learner/popularity.h"
#include "learner/popularity_model.h"
#include "learner/user_history.h"
#include "stream/event.h"

namespace freshet::learner {

// The algorithms Learner::Create accepts.
const std::vector<std::string>& AlgorithmNames();

struct Recommendation {
  std::vector<kernels::ScoredItem> items;
  bool personalized = false;  // false: popularity (unknown user, or the popularity model)
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

  // Learns from events in order; the result is identical to calling Apply() on each. Faster for
  // large batches: ids are resolved first, then each event's rows are prefetched a few events
  // ahead of its update, hiding memory latency on large tables.
  void ApplyBatch(absl::Span<const stream::Event> events);

  // Top-k items for an external user id. Unknown users get popularity. With exclude_seen, items in
  // the user's history are left out. InvalidArgument for k < 1.
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         Recommendation* out) const;

  const IdDictionary& users() const { return users_; }
  const IdDictionary& items() const { return items_; }
  const Popularity& popularity() const { return popularity_; }
  // A known user's history and counters; `user_row` must be in [0, users().size()).
  const UserHistory& history(int32_t user_row) const { return histories_[user_row]; }
  int64_t events_applied() const { return events_applied_; }
  const std::string& algorithm() const { return algorithm_; }

 private:
  Learner(std::string algorithm, const config::Config& config, const kernels::Backend* backend);

  struct Rows {
    int32_t user;
    int32_t item;
  };
  // Looks up (or adds) the event's user and item, given Hash() of each; grows per-row state,
  // except the model's.
  Rows Resolve(const stream::Event& event, uint64_t user_hash, uint64_t item_hash, bool* grew);
  // The update itself, for resolved rows (the model has been grown to include them).
  void ApplyResolved(Rows rows, const stream::Event& event);

  const std::string algorithm_;
  const config::Config config_;
  IdDictionary users_;
  IdDictionary items_;
  std::vector<UserHistory, HugePageAllocator<UserHistory>> histories_;
  Popularity popularity_;
  PopularityModel fallback_;  // answers users the learner has not seen
  std::unique_ptr<Model> model_;
  int64_t events_applied_ = 0;
  int32_t catalog_ = 0;  // items known as of the latest applied event (see Interaction::catalog)
  std::vector<Rows> batch_rows_;  // scratch of ApplyBatch()
  std::vector<std::pair<uint64_t, uint64_t>> batch_hashes_;  // scratch: (user, item) id hashes
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_LEARNER_H_
