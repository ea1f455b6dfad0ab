// StateStore: freshet's state in RocksDB. Column families (row values from EncodedRowSource):
//   users    row (4 bytes, big-endian) -> EncodeUser     (external id + model row)
//   history  row -> EncodeHistory                        (counters, recent and seen items)
//   items    row -> EncodeItem                           (external id, popularity, model row)
//   meta     "globals", "algorithm", "dim", "config", "fingerprint", "events_applied",
//            "model_version", "format", "hidden" (hidden items), "source/<stream>" (source name),
//            "pos/<stream><partition>" (last applied offset), "eid/<number>" (event ids)
// Rows are keyed by their dense row so a load rebuilds the id dictionaries exactly (the external
// id is inside the value); every value starts with a format version byte. Rows are opaque bytes
// here (store/encoded_rows.h). One StateBatch is one atomic RocksDB WriteBatch: the rows an
// interval changed together with the source positions of the last events they include, so the
// stored state always corresponds to an exact stream prefix.
//
// No RocksDB header is included here: its types are only forward-declared, so the engine and the
// operator commands that open a store see none of them. RocksDB itself is used only in
// store/rocksdb/*.cc (and by tests that reach past the store).
#ifndef FRESHET_STORE_ROCKSDB_STATE_STORE_H_
#define FRESHET_STORE_ROCKSDB_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mutex.h"
#include "config/config.h"
#include "store/encoded_rows.h"
#include "store/state_batch.h"
#include "store/stored_position.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class FileSystem;
class Status;
class WalFilter;
class WriteBatch;
struct DBOptions;
}  // namespace rocksdb

namespace freshet::store {

class StoreListener;
class StoreLogger;

// Version of the store layout (keys and column families), in meta "format".
inline constexpr uint8_t kStoreFormat = 1;

// What the meta column family says, without loading any row.
struct StoreMeta {
  bool empty = true;  // nothing was ever written
  std::string algorithm;
  int dim = 0;
  uint64_t fingerprint = 0;
  std::string config_toml;
  int64_t events_applied = 0;
  int64_t model_version = 0;
  int64_t users = 0;  // live users
  int64_t items = 0;
  std::vector<std::string> sources;  // by stream index
  std::vector<std::string> hidden_items;
  std::vector<StoredPosition> positions;
};

// The changes of one flush: a StateBatch (store/state_batch.h) holding one RocksDB WriteBatch,
// defined in state_store.cc. StateStore::Write and WritePrefix take only batches made by
// StateStore::NewBatch (of any StateStore).

// How a corrupt write-ahead log was handled at open (StateStore::Options::accept_wal_loss).
struct WalLoss {
  // Intact records in the log (each one written batch), and those after the first corruption,
  // not recovered; both -1 when the log could not be read past the corruption to count them (a
  // damaged fragment of a record spanning blocks can stop RocksDB's skipping reader).
  int64_t records_total = 0;
  int64_t records_dropped = 0;
  std::vector<std::string> corruption;  // what RocksDB could not read (file, bytes, why)
};

class StateStore : public BatchWriter {
 public:
  struct Options {
    bool read_only = false;  // no lock taken: works beside a running server
    bool create_if_missing = true;
    bool sync = false;  // fsync the WAL on every write
    // A write-ahead log that is corrupt anywhere but in a record cut short at its very end (a
    // crash mid-write) makes Open() fail with DataLoss. With this set, the state is recovered up
    // to the first corrupt record instead, and what follows it is dropped and counted in a
    // warning (wal_loss()): the operator's explicit choice, for one start (store.accept_wal_loss).
    bool accept_wal_loss = false;
    // RocksDB's file system; null: the operating system's. Tests inject I/O faults through it.
    std::shared_ptr<rocksdb::FileSystem> file_system = nullptr;
    // Memtable bytes (all column families) beyond which they are flushed to table files, which
    // bounds what a restart after a crash replays; 0: 64 MiB. Tests use little, so that log and
    // table files are created (and can fail to be) often.
    uint64_t memtable_bytes = 0;
  };

  // Opens (creating when allowed) the RocksDB database in `dir`. FailedPrecondition when another
  // process holds it; DataLoss when it is corrupt (a corrupt write-ahead log: unless
  // accept_wal_loss) or was written by an unknown layout version, saying what an operator can do.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& dir,
                                                          const Options& options);
  ~StateStore() override;

  using BatchWriter::NewBatch;
  std::unique_ptr<StateBatch> NewBatch(size_t expected_bytes) override;
  // After a failed write or a background error RocksDB refuses writes until DB::Resume(): this
  // resumes first (a full disk or exhausted file descriptors clear once space or descriptors are
  // free again), then writes.
  absl::Status Write(StateBatch* batch) override ABSL_LOCKS_EXCLUDED(write_mu_);
  absl::Status Health() const override;
  absl::Status Recover() override ABSL_LOCKS_EXCLUDED(write_mu_) { return Resume(); }
  // DB::Resume(): flushes the memtables to new table files and makes writes possible again.
  absl::Status Resume() ABSL_LOCKS_EXCLUDED(write_mu_);
  // Writes only the first `ops` puts and deletes of `batch`: what a store without atomic batches
  // could leave after a crash mid-write. For fault-injection tests of the persister's recovery.
  absl::Status WritePrefix(StateBatch* batch, int64_t ops);

  absl::StatusOr<StoreMeta> ReadMeta() const;
  // Calls `visit(seq, id)` for every stored event id (PutEventId), in ascending seq order.
  absl::Status LoadEventIds(const std::function<void(int64_t, absl::string_view)>& visit) const;

  // Calls `visit(item, entry)` for every stored catalog entry (StateBatch::PutCatalogItem), in
  // item id order; the entry's own format is engine/catalog.h's.
  absl::Status LoadCatalog(
      const std::function<absl::Status(absl::string_view, absl::string_view)>& visit) const;

  // Loads every stored row into `sink` (e.g. a new learner, created with the stored algorithm
  // and dimension, through engine::LearnerRows): histories on a thread of their own beside users
  // and items (see EncodedRowSink). DataLoss names the first bad key.
  absl::Status LoadInto(EncodedRowSink* sink) const;

  // A consistent copy of the database in `dir` (which must not exist): hard links of the table
  // files plus copies of the rest, taken without stopping writers. (SnapshotStore replaces the
  // links with copies.)
  absl::Status Checkpoint(const std::string& dir) ABSL_LOCKS_EXCLUDED(write_mu_);

  // Deletes every row and meta entry (the operator asked to start over).
  absl::Status Clear() ABSL_LOCKS_EXCLUDED(write_mu_);

  // Checks every table file's block checksums (DB::VerifyChecksum).
  absl::Status VerifyChecksums() const;

  // Bytes of the database's files on disk.
  int64_t SizeOnDisk() const;
  const std::string& dir() const { return dir_; }
  // What Options::accept_wal_loss dropped at open; all zero when the log was intact.
  const WalLoss& wal_loss() const { return wal_loss_; }

 private:
  StateStore();  // in the .cc, where the RocksDB types its members hold are complete
  // Opens db_ with `options` (recovery mode and all) and the column families.
  rocksdb::Status OpenDb(const rocksdb::DBOptions& options);
  // Every logged write: resumes RocksDB first when needed, writes, and flushes the memtables
  // when they are full. `what` names the write in errors.
  absl::Status WriteLogged(rocksdb::WriteBatch* batch, absl::string_view what)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  absl::Status ResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Status LoadFamily(
      rocksdb::ColumnFamilyHandle* family, absl::string_view what,
      const std::function<absl::Status(int32_t, absl::string_view)>& load) const;

  std::string dir_;
  Options options_;
  // RocksDB's environment (the file system below) and what it reports to: they outlive db_.
  std::unique_ptr<rocksdb::Env> env_;
  std::shared_ptr<StoreLogger> logger_;
  std::shared_ptr<StoreListener> listener_;
  std::unique_ptr<rocksdb::WalFilter> wal_counter_;
  WalLoss wal_loss_;
  // A write failed: the next one resumes the database first.
  std::atomic<bool> needs_resume_{false};
  // One logged write (with its resume and flush), checkpoint or closing flush at a time. It
  // serialises those calls into db_ (thread-safe itself) rather than guarding a member.
  Mutex write_mu_;
  std::unique_ptr<rocksdb::DB> db_;
  // default, users, history, items, meta and, unless a read-only view of an older store, catalog
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* users_ = nullptr;
  rocksdb::ColumnFamilyHandle* history_ = nullptr;
  rocksdb::ColumnFamilyHandle* items_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* catalog_ = nullptr;
};

// A stable fingerprint of the settings that fix a stored row's layout and meaning (algorithm,
// dimension, bpr.tied_context; for blend also blend.features, whether blend.cold_events and
// blend.session_start add weight sets, and whether topics has a table of its own), for manifests
// and compatibility checks.
uint64_t StateFingerprint(absl::string_view algorithm, const config::Config& config);
// What StateFingerprint() gave a blend state before it covered blend's settings: such a state is
// opened, and its rows checked as they load.
uint64_t LegacyBlendFingerprint(const config::Config& config);

}  // namespace freshet::store

#endif  // FRESHET_STORE_ROCKSDB_STATE_STORE_H_
