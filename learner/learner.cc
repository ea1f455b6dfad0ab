#include "learner/learner.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "learner/bpr_model.h"
#include "learner/cooc_model.h"
#include "learner/hybrid_model.h"
#include "learner/ials_model.h"

namespace freshet::learner {

const std::vector<std::string>& AlgorithmNames() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>{"bpr", "ials", "cooc", "hybrid", "popularity"};
  return *names;
}

Learner::Learner(std::string algorithm, const config::Config& config,
                 const kernels::Backend* backend)
    : algorithm_(std::move(algorithm)),
      config_(config),
      popularity_(config.popularity_half_life_s),
      fallback_(&popularity_, backend) {}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend) {
  if (backend == nullptr) return absl::InvalidArgumentError("Learner needs a compute backend");
  std::unique_ptr<Learner> learner(new Learner(std::string(algorithm), config, backend));
  const Popularity* pop = &learner->popularity_;
  if (algorithm == "bpr") {
    learner->model_ = std::make_unique<BprModel>(config, pop, backend);
  } else if (algorithm == "ials") {
    learner->model_ = std::make_unique<IalsModel>(config, backend);
  } else if (algorithm == "cooc") {
    learner->model_ = std::make_unique<CoocModel>(config, pop, backend);
  } else if (algorithm == "hybrid") {
    learner->model_ = std::make_unique<HybridModel>(config, pop, backend);
  } else if (algorithm == "popularity") {
    learner->model_ = std::make_unique<PopularityModel>(pop, backend);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown algorithm '", algorithm,
                                                   "'; valid: ", absl::StrJoin(AlgorithmNames(), ", ")));
  }
  return learner;
}

Learner::Rows Learner::Resolve(const stream::Event& event, uint64_t user_hash,
                               uint64_t item_hash, bool* grew) {
  bool new_user = false, new_item = false;
  const Rows rows{users_.FindOrInsert(event.user, user_hash, &new_user),
                  items_.FindOrInsert(event.item, item_hash, &new_item)};
  if (new_user) {
    histories_.emplace_back();
  }
  if (new_item) popularity_.Resize(items_.size());
  *grew = *grew || new_user || new_item;
  return rows;
}

void Learner::ApplyResolved(Rows rows, const stream::Event& event) {
  UserHistory& history = histories_[rows.user];
  // Rows are assigned in order of first appearance, so the catalog is every row up to this one.
  catalog_ = std::max(catalog_, rows.item + 1);
  model_->Learn(Interaction{rows.user, rows.item, event.weight, event.ts_ms,
                            history.Recent(config_.history_recent), catalog_});
  history.Add(rows.item, config_.history_recent, config_.history_max_items);
  popularity_.Add(rows.item, event.weight, event.ts_ms);
  history.CountEvent(event.ts_ms);
  ++events_applied_;
}

void Learner::Apply(const stream::Event& event) {
  bool grew = false;
  const Rows rows =
      Resolve(event, IdDictionary::Hash(event.user), IdDictionary::Hash(event.item), &grew);
  if (grew) model_->Grow(users_.size(), items_.size());
  ApplyResolved(rows, event);
}

void Learner::ApplyBatch(absl::Span<const stream::Event> events) {
  // Resolving every id first is equivalent to resolving them one by one: rows are assigned in
  // order of first appearance either way, and nothing below depends on rows added later.
  // The lookups are pipelined: the hash slots of event i + 32 and the ids they point at for event
  // i + 16 are fetched while event i is resolved.
  const size_t n = events.size();
  batch_hashes_.clear();
  for (const stream::Event& event : events) {
    batch_hashes_.emplace_back(IdDictionary::Hash(event.user), IdDictionary::Hash(event.item));
  }
  bool grew = false;
  batch_rows_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i + 32 < n) {
      users_.Prefetch(batch_hashes_[i + 32].first);
      items_.Prefetch(batch_hashes_[i + 32].second);
    }
    if (i + 16 < n) {
      users_.PrefetchCandidate(batch_hashes_[i + 16].first);
      items_.PrefetchCandidate(batch_hashes_[i + 16].second);
    }
    batch_rows_.push_back(
        Resolve(events[i], batch_hashes_[i].first, batch_hashes_[i].second, &grew));
  }
  if (grew) model_->Grow(users_.size(), items_.size());
  // Staged prefetch, hiding the latency of rows of random users and items: the history object
  // far ahead, its contents nearer (their address is known once the object is in cache), and the
  // model's rows (which may depend on the history) nearest.
  constexpr size_t kFar = 16, kMid = 10, kNear = 5;
  for (size_t i = 0; i < n; ++i) {
    if (i + kFar < n) {
      __builtin_prefetch(&histories_[batch_rows_[i + kFar].user]);  // one line: see UserHistory
    }
    if (i + kMid < n) histories_[batch_rows_[i + kMid].user].Prefetch();
    if (i + kNear < n) {
      const Rows& ahead = batch_rows_[i + kNear];
      model_->Prefetch(Interaction{ahead.user, ahead.item, 0.0f, 0,
                                   histories_[ahead.user].Recent(config_.history_recent)});
    }
    ApplyResolved(batch_rows_[i], events[i]);
  }
}

absl::Status Learner::Recommend(absl::string_view user, int k, bool exclude_seen,
                                Recommendation* out) const {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be at least 1, got ", k));
  out->items.clear();
  const int32_t row = users_.Find(user);
  if (row == IdDictionary::kMissing) {
    out->personalized = false;
    return fallback_.Recommend(UserQuery{}, k, &out->items);
  }
  const UserHistory& history = histories_[row];
  std::vector<int32_t> scratch;
  const UserQuery query{row, history.Recent(config_.history_recent),
                        exclude_seen ? history.Seen(&scratch) : absl::Span<const int32_t>()};
  out->personalized = algorithm_ != "popularity";
  return model_->Recommend(query, k, &out->items);
}

}  // namespace freshet::learner
