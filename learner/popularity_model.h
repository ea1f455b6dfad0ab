// PopularityModel ("popularity"): ranks items by (decayed) popularity, the same for every user.
// The baseline every model must beat and the answer for users freshet has not seen.
#ifndef FRESHET_LEARNER_POPULARITY_MODEL_H_
#define FRESHET_LEARNER_POPULARITY_MODEL_H_

#include "learner/model.h"
#include "learner/popularity.h"

namespace freshet::learner {

// Not thread-safe (see Model). Learns nothing itself: the Learner keeps the counts.
class PopularityModel : public Model {
 public:
  PopularityModel(const Popularity* popularity, const kernels::Backend* backend)
      : popularity_(popularity), backend_(backend) {}

  std::string name() const override { return "popularity"; }
  void Grow(int32_t, int32_t) override {}
  void Learn(const Interaction&) override {}
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override {
    const absl::Span<const float> s = popularity_->Scores();
    return backend_->TopKFromScores(s.data(), static_cast<int64_t>(s.size()), query.exclude, k,
                                    out);
  }
  void ScoreAll(const UserQuery&, absl::Span<float> scores) const override {
    const absl::Span<const float> s = popularity_->Scores();
    for (size_t i = 0; i < scores.size() && i < s.size(); ++i) scores[i] = s[i];
  }

 private:
  const Popularity* popularity_;
  const kernels::Backend* backend_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_POPULARITY_MODEL_H_
