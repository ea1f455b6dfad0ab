#include "learner/learner.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "learner/bpr_model.h"
#include "learner/cooc_model.h"
#include "learner/ials_model.h"
#include "learner/popularity_model.h"

namespace freshet::learner {

const std::vector<std::string>& AlgorithmNames() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>{"bpr", "ials", "cooc", "popularity"};
  return *names;
}

Learner::Learner(std::string algorithm, const config::Config& config,
                 const kernels::Backend* backend)
    : algorithm_(std::move(algorithm)),
      config_(config),
      backend_(backend),
      popularity_(config.popularity_half_life_s) {}

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
  } else if (algorithm == "popularity") {
    learner->model_ = std::make_unique<PopularityModel>(pop, backend);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown algorithm '", algorithm,
                                                   "'; valid: ", absl::StrJoin(AlgorithmNames(), ", ")));
  }
  return learner;
}

void Learner::Apply(const stream::Event& event) {
  bool new_user = false, new_item = false;
  const int32_t user = users_.FindOrInsert(event.user, &new_user);
  const int32_t item = items_.FindOrInsert(event.item, &new_item);
  if (new_user) {
    histories_.emplace_back();
    user_stats_.emplace_back();
  }
  if (new_item) popularity_.Resize(items_.size());
  if (new_user || new_item) model_->Grow(users_.size(), items_.size());

  UserHistory& history = histories_[user];
  model_->Learn(Interaction{user, item, event.weight, event.ts_ms,
                            history.Recent(config_.history_recent)});
  history.Add(item, config_.history_recent, config_.history_max_items);
  popularity_.Add(item, event.weight, event.ts_ms);
  UserStats& stats = user_stats_[user];
  ++stats.events;
  stats.last_ts_ms = event.ts_ms;
  ++events_applied_;
}

absl::Status Learner::Recommend(absl::string_view user, int k, bool exclude_seen,
                                Recommendation* out) const {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be at least 1, got ", k));
  out->items.clear();
  const int32_t row = users_.Find(user);
  if (row == IdDictionary::kMissing) {
    out->personalized = false;
    const absl::Span<const float> s = popularity_.Scores();
    return backend_->TopKFromScores(s.data(), static_cast<int64_t>(s.size()), {}, k, &out->items);
  }
  const UserHistory& history = histories_[row];
  const UserQuery query{row, history.Recent(config_.history_recent),
                        exclude_seen ? history.Seen() : absl::Span<const int32_t>()};
  out->personalized = algorithm_ != "popularity";
  return model_->Recommend(query, k, &out->items);
}

}  // namespace freshet::learner
