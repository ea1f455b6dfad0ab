#include "learner/hybrid_model.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/internal/vector_ops.h"

namespace freshet::learner {

using internal::Standardise;

void HybridModel::Grow(int32_t users, int32_t items) {
  bpr_.Grow(users, items);
  cooc_.Grow(users, items);
  items_ = items;
}

void HybridModel::Learn(const Interaction& event) {
  bpr_.Learn(event);
  cooc_.Learn(event);
}

void HybridModel::ScoreAll(const UserQuery& query, absl::Span<float> scores) const {
  std::vector<float> cooc(scores.size());
  bpr_.ScoreAll(query, scores);
  cooc_.ScoreAll(query, absl::MakeSpan(cooc));
  Standardise(scores);
  Standardise(absl::MakeSpan(cooc));
  for (size_t i = 0; i < scores.size(); ++i) scores[i] += weight_ * cooc[i];
}

absl::Status HybridModel::Recommend(const UserQuery& query, int k,
                                    std::vector<kernels::ScoredItem>* out) const {
  std::vector<float> scores(static_cast<size_t>(items_));
  ScoreAll(query, absl::MakeSpan(scores));
  return backend_->TopKFromScores(scores.data(), static_cast<int64_t>(scores.size()), query.exclude,
                                  k, out);
}

void HybridModel::EncodeUser(int32_t row, std::string* out) const {
  std::string part;
  ByteWriter w(out);
  bpr_.EncodeUser(row, &part);
  w.PutString(part);
  part.clear();
  cooc_.EncodeUser(row, &part);
  w.PutString(part);
}

absl::Status HybridModel::DecodeUser(int32_t row, absl::string_view in) {
  // Both parts are checked before either is decoded, so a refused row changes neither.
  ByteReader r(in);
  absl::string_view bpr, cooc;
  absl::Status status;
  if (r.GetStringView(&bpr) && r.GetStringView(&cooc) && r.done()) {
    status = bpr_.CheckUser(row, bpr);
    if (status.ok()) status = cooc_.CheckUser(row, cooc);
    if (status.ok()) {
      FRESHET_RETURN_IF_ERROR(bpr_.DecodeUser(row, bpr));
      return cooc_.DecodeUser(row, cooc);
    }
  }
  // The bpr part alone (stored before the cooc part had sessions); a value that is neither form
  // is refused with what was wrong with it as two parts, when it parsed as two.
  const absl::Status alone = bpr_.CheckUser(row, in);
  if (!alone.ok()) return status.ok() ? alone : status;
  cooc_.ResetUser(row);
  return bpr_.DecodeUser(row, in);
}

void HybridModel::EncodeItem(int32_t row, std::string* out) const {
  std::string part;
  ByteWriter w(out);
  bpr_.EncodeItem(row, &part);
  w.PutString(part);
  part.clear();
  cooc_.EncodeItem(row, &part);
  w.PutString(part);
}

absl::Status HybridModel::DecodeItem(int32_t row, absl::string_view in) {
  ByteReader r(in);
  absl::string_view bpr, cooc;
  if (!r.GetStringView(&bpr) || !r.GetStringView(&cooc) || !r.done()) {
    return absl::DataLossError(
        absl::StrCat("hybrid item row ", row, ": malformed (", in.size(), " bytes)"));
  }
  // Both parts are checked before either is decoded, so a refused row changes neither.
  FRESHET_RETURN_IF_ERROR(bpr_.CheckItem(row, bpr));
  FRESHET_RETURN_IF_ERROR(cooc_.CheckItem(row, cooc));
  FRESHET_RETURN_IF_ERROR(bpr_.DecodeItem(row, bpr));
  return cooc_.DecodeItem(row, cooc);
}

}  // namespace freshet::learner
