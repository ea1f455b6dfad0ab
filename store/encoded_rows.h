// The store's view of the learnt state: rows as opaque bytes, addressed by their dense row number.
// The store never interprets a row: the Persister reads changed rows (and the counters it writes
// to meta) from an EncodedRowSource, and StateStore::LoadInto writes stored rows into an
// EncodedRowSink. engine::LearnerRows adapts learner::Learner to both (engine/learner_rows.h), so
// store/ depends on neither the learner nor its row formats.
#ifndef FRESHET_STORE_ENCODED_ROWS_H_
#define FRESHET_STORE_ENCODED_ROWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace freshet::store {

// What changed since the previous EncodedRowSource::TakeChanges(): rows to write and user rows to
// delete. A row may be in both `erased_users` and `users` (expired, then reused by a new user):
// delete first, then write.
struct ChangedRows {
  std::vector<int32_t> users;
  std::vector<int32_t> items;
  std::vector<int32_t> erased_users;
  bool globals = false;  // EncodeGlobals() changed
  bool empty() const { return users.empty() && items.empty() && erased_users.empty() && !globals; }
};

// The state a Persister cuts a batch from.
//
// Thread safety: not thread-safe; the Persister calls it only from the thread that drives it
// (MaybeFlush, Flush), and the caller keeps the state from changing for the duration of that call
// (the engine holds the learner shared and the positions locked: the consistent cut).
class EncodedRowSource {
 public:
  virtual ~EncodedRowSource() = default;

  // Rows changed since the previous call; clears the record.
  virtual ChangedRows TakeChanges() = 0;
  // The stored form of a user (id and model row), of a user's history, of an item (id,
  // popularity and model row), and of the state shared by all rows. Each appends to `out`.
  virtual void EncodeUser(int32_t row, std::string* out) const = 0;
  virtual void EncodeHistory(int32_t row, std::string* out) const = 0;
  virtual void EncodeItem(int32_t row, std::string* out) const = 0;
  virtual void EncodeGlobals(std::string* out) const = 0;
  // The counters written to meta beside the rows (what `inspect` shows without loading rows).
  virtual int64_t events_applied() const = 0;
  virtual int64_t live_users() const = 0;
  virtual int64_t live_items() const = 0;
};

// Where a load puts the stored rows: BeginLoad with the globals, then every stored user, history
// and item row once, then FinishLoad. Errors are DataLoss naming what is wrong (the store adds the
// family and key); FailedPrecondition when the stored state does not fit the sink.
//
// Thread safety: BeginLoad and FinishLoad run alone; between them StateStore::LoadInto calls
// LoadHistory on a thread of its own, concurrently with LoadUser and LoadItem on the calling
// thread, so an implementation must keep histories apart from users and items.
class EncodedRowSink {
 public:
  virtual ~EncodedRowSink() = default;

  virtual absl::Status BeginLoad(absl::string_view globals) = 0;
  virtual absl::Status LoadUser(int32_t row, absl::string_view value) = 0;
  virtual absl::Status LoadHistory(int32_t row, absl::string_view value) = 0;
  virtual absl::Status LoadItem(int32_t row, absl::string_view value) = 0;
  virtual absl::Status FinishLoad() = 0;
};

}  // namespace freshet::store

#endif  // FRESHET_STORE_ENCODED_ROWS_H_
