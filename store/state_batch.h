// StateBatch and BatchWriter: what the Persister writes and what it writes through, without the
// database behind them. One StateBatch is one atomic write: the rows an interval changed together
// with the source positions of the last events they include, so the stored state always
// corresponds to an exact stream prefix. StateStore (store/rocksdb/state_store.h) implements
// BatchWriter with a RocksDB WriteBatch per StateBatch; no RocksDB type appears here.
#ifndef FRESHET_STORE_STATE_BATCH_H_
#define FRESHET_STORE_STATE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace freshet::store {

// The changes of one flush, made by BatchWriter::NewBatch() and written by the same writer.
//
// Thread safety: not thread-safe; one thread fills a batch, then hands it over (the Persister's
// queue) to the thread that writes it, and nobody touches it meanwhile.
class StateBatch {
 public:
  virtual ~StateBatch() = default;

  virtual void PutUser(int32_t row, absl::string_view value) = 0;
  virtual void PutHistory(int32_t row, absl::string_view value) = 0;
  virtual void DeleteUser(int32_t row) = 0;  // its users and history entries
  virtual void PutItem(int32_t row, absl::string_view value) = 0;
  // The learner's shared state and the counters `inspect` shows without loading rows.
  virtual void PutGlobals(absl::string_view learner_globals, int64_t events_applied, int64_t users,
                          int64_t items) = 0;
  virtual void PutPosition(int32_t stream, int32_t partition, int64_t offset) = 0;
  virtual void PutSource(int32_t stream, absl::string_view name) = 0;
  virtual void PutModelVersion(int64_t version) = 0;
  // The ids (idempotency keys) the exactly-once filter remembers, by their number
  // (stream::AppliedPositions::next_id_seq()); ForgetEventIds removes numbers [from, to).
  virtual void PutEventId(int64_t seq, absl::string_view id) = 0;
  virtual void ForgetEventIds(int64_t from, int64_t to) = 0;
  // Items hidden from every answer (item availability), by external id.
  virtual void PutHiddenItems(const std::vector<std::string>& items) = 0;
  // One item's catalog entry (engine/catalog.h encodes it), by external id; replaces the old one.
  virtual void PutCatalogItem(absl::string_view item, absl::string_view entry) = 0;
  // Identity of the state: algorithm, dimension, a fingerprint of the configuration and its text.
  virtual void PutIdentity(absl::string_view algorithm, int dim, uint64_t fingerprint,
                           absl::string_view config_toml) = 0;

  // User, item and deletion entries.
  virtual int64_t rows() const = 0;
  // Encoded size of the batch.
  virtual size_t bytes() const = 0;
  // Puts and deletes in the batch, meta entries included (what StateStore::WritePrefix counts).
  virtual int64_t ops() const = 0;
};

// Writes batches atomically. StateStore implements it; tests wrap it to inject faults.
//
// Thread safety: implementations are thread-safe; the Persister's writer thread calls Write()
// and Recover() while other threads may call Health(), and StateStore serialises its writes.
class BatchWriter {
 public:
  virtual ~BatchWriter() = default;
  // A batch with room for about `expected_bytes` (0: no estimate), so that a batch of megabytes is
  // not copied each time it outgrows its buffer.
  virtual std::unique_ptr<StateBatch> NewBatch(size_t expected_bytes) = 0;
  std::unique_ptr<StateBatch> NewBatch() { return NewBatch(0); }
  // All of `batch` (made by this writer's NewBatch()) or nothing. After a failure the writer may
  // refuse writes until it recovers; Write() itself tries to recover first.
  virtual absl::Status Write(StateBatch* batch) = 0;
  // OK, or why the writer refuses writes now (e.g. RocksDB stopped after a background flush
  // failed on a full disk) until Recover() succeeds.
  virtual absl::Status Health() const { return absl::OkStatus(); }
  // Tries to make writes possible again; the persister calls it while idle and unhealthy.
  virtual absl::Status Recover() { return absl::OkStatus(); }
};

}  // namespace freshet::store

#endif  // FRESHET_STORE_STATE_BATCH_H_
