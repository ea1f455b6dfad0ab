// HybridModel ("hybrid"): the bpr embedding model and the cooc co-occurrence model learn side by
// side from every event; a user's score for an item is z(bpr) + w * z(cooc), where z standardises
// each model's scores over the catalog for this query (mean 0, variance 1), so the blend does not
// depend on either model's score scale. w is hybrid.cooc_weight.
#ifndef FRESHET_LEARNER_HYBRID_MODEL_H_
#define FRESHET_LEARNER_HYBRID_MODEL_H_

#include "learner/bpr_model.h"
#include "learner/cooc_model.h"

namespace freshet::learner {

// Not thread-safe (see Model).
class HybridModel : public Model {
 public:
  HybridModel(const config::Config& config, const Popularity* popularity,
              const kernels::Backend* backend)
      : weight_(config.hybrid_cooc_weight),
        backend_(backend),
        bpr_(config, popularity, backend),
        cooc_(config, popularity, backend) {}

  std::string name() const override { return "hybrid"; }
  void Grow(int32_t users, int32_t items) override;
  void Learn(const Interaction& event) override;
  void Prefetch(const Interaction& upcoming) const override { bpr_.Prefetch(upcoming); }
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override;
  void ScoreAll(const UserQuery& query, absl::Span<float> scores) const override;

  // Rows hold the bpr part and the cooc part, each length-prefixed. (User rows stored before the
  // cooc part had sessions are the bpr part alone, and still load.) Decoding checks both parts
  // before it decodes either: a refused row (DataLoss) is left as it was.
  void EncodeUser(int32_t row, std::string* out) const override;
  void EncodeItem(int32_t row, std::string* out) const override;
  absl::Status DecodeUser(int32_t row, absl::string_view in) override;
  absl::Status DecodeItem(int32_t row, absl::string_view in) override;
  void FinishLoad(int32_t users, int32_t items, int64_t events) override {
    bpr_.FinishLoad(users, items, events);
    cooc_.FinishLoad(users, items, events);
  }
  void ResetUser(int32_t row) override {
    bpr_.ResetUser(row);
    cooc_.ResetUser(row);
  }
  kernels::ItemMatrixView ItemVectors() const override { return bpr_.ItemVectors(); }
  const float* UserVector(int32_t row) const override { return bpr_.UserVector(row); }
  int64_t BytesPerUser() const override { return bpr_.BytesPerUser() + cooc_.BytesPerUser(); }
  int64_t BytesPerItem() const override { return bpr_.BytesPerItem() + cooc_.BytesPerItem(); }
  void set_dirty_items(DirtyRows* dirty) override {
    Model::set_dirty_items(dirty);
    bpr_.set_dirty_items(dirty);
    cooc_.set_dirty_items(dirty);
  }

 private:
  const float weight_;
  const kernels::Backend* backend_;
  BprModel bpr_;
  CoocModel cooc_;
  int32_t items_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_HYBRID_MODEL_H_
