// CoocModel ("cooc"): online item-to-item co-occurrence. Each event (u, i) strengthens the pair
// (i, j) for each of u's latest `window` items j, by decay^k for the item k steps back. A user is
// scored from their latest items: score(n) = sum_k decay^k * C(j_k, n) / (count_j * count_n)^e
// + popularity_weight * log(1 + popularity_n). On streams where the next event follows the last
// few (most real clickstreams) this learns instantly what embeddings learn slowly.
//
// Sessions (cooc.session_gap_s > 0, learner/sessions.h): only the items of the new item's session
// co-occur with it. Anonymous sessions need nothing more: a log keyed by session id treats each
// session as a user.
#ifndef FRESHET_LEARNER_COOC_MODEL_H_
#define FRESHET_LEARNER_COOC_MODEL_H_

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "config/config.h"
#include "learner/model.h"
#include "learner/popularity.h"
#include "learner/sessions.h"

namespace freshet::learner {

// Not thread-safe (see Model).
class CoocModel : public Model {
 public:
  CoocModel(const config::Config& config, const Popularity* popularity,
            const kernels::Backend* backend);

  std::string name() const override { return "cooc"; }
  void Grow(int32_t users, int32_t items) override;
  void Learn(const Interaction& event) override;
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override;
  void ScoreAll(const UserQuery& query, absl::Span<float> scores) const override;
  // Adds the co-occurrence part of the score over the latest `window` items of `recent`, the item
  // k steps back weighted by decay^k, to scores of rows [0, scores.size()).
  void AddScores(absl::Span<const int32_t> recent, int window, float decay,
                 absl::Span<float> scores) const;
  // As AddScores(), and appends to `touched` each row whose score was 0 before this call and is
  // not after it, once: with `scores` all 0 on entry, the rows the lists reach, in one pass.
  void AddScores(absl::Span<const int32_t> recent, int window, float decay,
                 absl::Span<float> scores, std::vector<int32_t>* touched) const;

  // A user row is the user's session (learner/sessions.h).
  void EncodeUser(int32_t row, std::string* out) const override { sessions_.Encode(row, out); }
  absl::Status DecodeUser(int32_t row, absl::string_view in) override {
    return sessions_.Decode(row, in);
  }
  void ResetUser(int32_t row) override { sessions_.Reset(row); }
  void EncodeItem(int32_t row, std::string* out) const override;
  // Refuses (DataLoss, the row unchanged) a malformed value, a negative count, more neighbours
  // than items, a neighbour that is not an item row, and a weight that is not finite and >= 0.
  absl::Status DecodeItem(int32_t row, absl::string_view in) override;
  // What DecodeUser()/DecodeItem() would answer, without writing anything (for composite models,
  // which check every part of a row before they decode any).
  absl::Status CheckUser(int32_t row, absl::string_view in) const {
    return sessions_.Check(row, in);
  }
  absl::Status CheckItem(int32_t row, absl::string_view in) const;
  // Recounts the stored pairs.
  void FinishLoad(int32_t users, int32_t items, int64_t events) override;
  int64_t BytesPerUser() const override { return sessions_.BytesPerUser(); }
  int64_t BytesPerItem() const override;

  int64_t stored_pairs() const { return pairs_; }
  // The items that co-occur with `item` (a row below the grown size), with their weights.
  const absl::flat_hash_map<int32_t, float>& neighbours(int32_t item) const {
    return neighbours_[item];
  }
  // Interactions counted for `item` (a row below the grown size).
  int64_t count(int32_t item) const { return counts_[item]; }

 private:
  // A checked item row: its count and its n neighbours, packed (item, weight) pairs inside `in`.
  struct ItemRow {
    int64_t count = 0;
    uint64_t n = 0;
    const char* pairs = nullptr;
  };
  absl::Status ParseItem(int32_t row, absl::string_view in, ItemRow* out) const;
  // The two AddScores(), `touched` written only when kTrack.
  template <bool kTrack>
  void AccumulateScores(absl::Span<const int32_t> recent, int window, float decay,
                        absl::Span<float> scores, std::vector<int32_t>* touched) const;
  void AddPair(int32_t a, int32_t b, float weight);
  // Drops the weakest pairs, down to about 3/4 of cooc.max_pairs.
  void Prune();

  const config::Config config_;
  const Popularity* popularity_;
  const kernels::Backend* backend_;
  std::vector<absl::flat_hash_map<int32_t, float>> neighbours_;
  // (interactions of the item + 1)^-cooc.norm_exponent, kept current so scoring needs no pow().
  std::vector<float> inverse_norm_;
  std::vector<int64_t> counts_;
  int64_t pairs_ = 0;
  Sessions sessions_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_COOC_MODEL_H_
