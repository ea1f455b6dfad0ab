// LearnerRows: a learner::Learner as the store sees it — the rows the Persister reads
// (store::EncodedRowSource) and the rows a load writes (store::EncodedRowSink). The store knows
// rows only as opaque bytes (store/encoded_rows.h); this adapter is the one place the two meet,
// so neither learner/ nor store/ includes the other.
//
// Thread safety: a view that holds no state of its own; each call is the learner's, under the
// contract of the interface it is made through (EncodedRowSource: the caller holds the learner
// still, e.g. shared under LiveModel's lock; EncodedRowSink: a new learner nobody else uses yet).
#ifndef FRESHET_ENGINE_LEARNER_ROWS_H_
#define FRESHET_ENGINE_LEARNER_ROWS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "learner/learner.h"
#include "store/encoded_rows.h"
#include "store/rocksdb/state_store.h"

namespace freshet::engine {

class LearnerRows final : public store::EncodedRowSource, public store::EncodedRowSink {
 public:
  // `learner` must outlive the adapter.
  explicit LearnerRows(learner::Learner& learner) : learner_(learner) {}

  // store::EncodedRowSource
  store::ChangedRows TakeChanges() override;
  void EncodeUser(int32_t row, std::string* out) const override { learner_.EncodeUser(row, out); }
  void EncodeHistory(int32_t row, std::string* out) const override {
    learner_.EncodeHistory(row, out);
  }
  void EncodeItem(int32_t row, std::string* out) const override { learner_.EncodeItem(row, out); }
  void EncodeGlobals(std::string* out) const override { learner_.EncodeGlobals(out); }
  int64_t events_applied() const override { return learner_.events_applied(); }
  int64_t live_users() const override { return learner_.users().live(); }
  int64_t live_items() const override { return learner_.items().live(); }

  // store::EncodedRowSink
  absl::Status BeginLoad(absl::string_view globals) override { return learner_.BeginLoad(globals); }
  absl::Status LoadUser(int32_t row, absl::string_view value) override {
    return learner_.LoadUser(row, value);
  }
  absl::Status LoadHistory(int32_t row, absl::string_view value) override {
    return learner_.LoadHistory(row, value);
  }
  absl::Status LoadItem(int32_t row, absl::string_view value) override {
    return learner_.LoadItem(row, value);
  }
  absl::Status FinishLoad() override { return learner_.FinishLoad(); }

 private:
  learner::Learner& learner_;
};

// Loads every row stored in `store` into `learner` (a new one, created with the stored algorithm
// and dimension): StateStore::LoadInto through a LearnerRows.
absl::Status LoadLearner(const store::StateStore& store, learner::Learner& learner);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_LEARNER_ROWS_H_
