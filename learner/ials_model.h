// IalsModel ("ials"): implicit alternating least squares, online. Every event re-solves the
// user's vector in closed form against the cached item Gramian (the user "fold-in"), from the
// user's latest items with recency-weighted confidence (the short-term part) plus a pull towards
// the user's previous vector (the long-term part); then the event's item is re-solved the same way
// against the cached user Gramian from the item's latest users.
//
// Objective for one user (Hu, Koren, Volinsky 2008; Rendle et al. 2021):
//   sum_{j in H} c_j (1 - p.q_j)^2 + alpha0 * sum_{all i} (p.q_i)^2 + reg |p|^2 + lt |p - p_prev|^2
// whose minimiser solves (alpha0 G + sum_j (c_j - alpha0) q_j q_j^T + (reg + lt) I) p =
// sum_j c_j q_j + lt p_prev, with G = sum_i q_i q_i^T kept up to date by rank-one updates.
// The solve is exact (Cholesky) when ials.cg_steps is 0, else that many conjugate-gradient
// steps warm-started from the previous vector (Takacs et al. 2011), which is far cheaper.
//
// Popularity prior: score(u, i) = p_u . q_i + ials.popularity_weight * log(1 + count_i). A user
// with few events has a vector that says little, and the prior ranks their items by popularity
// (as it ranks users freshet has never seen); the fitted part p_u . q_i, which grows with the
// evidence, dominates for active users. It is an item bias, so scoring stays one inner product.
#ifndef FRESHET_LEARNER_IALS_MODEL_H_
#define FRESHET_LEARNER_IALS_MODEL_H_

#include <vector>

#include "common/random.h"
#include "config/config.h"
#include "learner/embedding_table.h"
#include "learner/model.h"
#include "learner/popularity.h"

namespace freshet::learner {

// Not thread-safe (see Model).
class IalsModel : public Model {
 public:
  // `popularity` and `backend` must outlive the model.
  IalsModel(const config::Config& config, const Popularity* popularity,
            const kernels::Backend* backend);

  std::string name() const override { return "ials"; }
  void Grow(int32_t users, int32_t items) override;
  void Learn(const Interaction& event) override;
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override;
  void ScoreAll(const UserQuery& query, absl::Span<float> scores) const override;

  void EncodeUser(int32_t row, std::string* out) const override;
  void EncodeItem(int32_t row, std::string* out) const override;
  // Decoding refuses (DataLoss, the row unchanged) a value of the wrong size, a NaN or an infinity
  // in a vector, and an item's latest users beyond ials.window or not user rows.
  absl::Status DecodeUser(int32_t row, absl::string_view in) override;
  absl::Status DecodeItem(int32_t row, absl::string_view in) override;
  // What DecodeUser()/DecodeItem() would answer, without writing anything: composite models check
  // every part of a row before they decode any.
  absl::Status CheckUser(int32_t row, absl::string_view in) const;
  // `served`: as DecodeServedItem() would answer.
  absl::Status CheckItem(int32_t row, absl::string_view in, bool served = false) const;
  // The vector alone: a replica scores with it and never solves an item (its latest users may be
  // rows the replica does not have).
  absl::Status DecodeServedItem(int32_t row, absl::string_view in) override;
  // Rebuilds both Gramians from the loaded rows.
  void FinishLoad(int32_t users, int32_t items, int64_t events) override;
  void ResetUser(int32_t row) override;
  kernels::ItemMatrixView ItemVectors() const override { return items_.View(); }
  bool QueryVector(const UserQuery& query, std::vector<float>* out) const override {
    const float* row = users_.Row(query.user);
    out->assign(row, row + users_.stride());
    return true;
  }
  kernels::ItemMatrixView ScoringMatrix() const override { return items_.View(bias_.data()); }
  const float* UserVector(int32_t row) const override { return users_.Row(row); }
  int64_t BytesPerUser() const override;
  int64_t BytesPerItem() const override;
  int64_t NonFiniteSkips() const override { return nonfinite_skips_; }

 private:
  // Checks a persisted item row whole; on OK *vector points at its dim_ floats and *users at its
  // *count latest users (int32, packed) inside `in`. `served`: the users need not be rows here.
  absl::Status CheckItem(int32_t row, absl::string_view in, bool served, const char** vector,
                         const char** users, uint64_t* count) const;
  // The popularity prior of an item with its current count (ials.popularity_weight).
  float PopularityBias(int32_t item) const;
  // Solves for `target` (in place: its current value is the warm start and the long-term prior)
  // from the rows `others` of `other_table` (newest last) with recency-weighted confidence, against
  // `gram` (the Gramian of `other_table`).
  void Solve(const std::vector<double>& gram, const EmbeddingTable& other_table,
             absl::Span<const int32_t> others, float* target);
  // Adds rows [gram_rows, rows) of `table` to `gram` (rows join a Gramian when they are first
  // used, not when batched learning allocates them ahead).
  void Admit(std::vector<double>& gram, const EmbeddingTable& table, int32_t rows,
             int32_t* gram_rows);
  // False when any of the dim_ values at `row` is NaN or infinite.
  bool AllFinite(const float* row) const;
  // gram += new new^T - old old^T.
  void UpdateGram(std::vector<double>& gram, const float* old_row, const float* new_row);

  const config::Config config_;
  const Popularity* popularity_;
  const kernels::Backend* backend_;
  const int dim_;
  std::vector<float> bias_;  // the popularity prior of each item
  EmbeddingTable users_;
  EmbeddingTable items_;
  std::vector<double> user_gram_;  // dim x dim, sum of p p^T
  std::vector<double> item_gram_;  // dim x dim, sum of q q^T
  int32_t users_in_gram_ = 0;
  int32_t items_in_gram_ = 0;
  std::vector<std::vector<int32_t>> item_users_;  // latest users of each item, newest last
  std::vector<int32_t> history_;                  // scratch: the user's items incl. this event

  // Scratch for Learn() (a row before its solve) and Solve().
  std::vector<float> before_, rhs_, weights_, r_, ap_, dir_;
  int64_t nonfinite_skips_ = 0;
  std::vector<int32_t> rows_;  // Solve(): the distinct rows of its window, newest first
  std::vector<double> matrix_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_IALS_MODEL_H_
