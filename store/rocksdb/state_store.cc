#include "store/rocksdb/state_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/wal_filter.h"
#include "rocksdb/write_batch.h"
#include "store/rocksdb/status.h"
#include "store/rocksdb/store_io.h"

namespace freshet::store {
namespace {

constexpr const char* kUsers = "users";
constexpr const char* kHistory = "history";
constexpr const char* kItems = "items";
constexpr const char* kMeta = "meta";
// Item catalog entries by external id (added after the first layout; created on a writable open,
// absent from a read-only view of an older store).
constexpr const char* kCatalog = "catalog";

constexpr absl::string_view kPositionPrefix = "pos/";
constexpr absl::string_view kSourcePrefix = "source/";
constexpr absl::string_view kEventIdPrefix = "eid/";

void AppendBigEndian32(uint32_t v, std::string* out) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(bytes, 4);
}

uint32_t ReadBigEndian32(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Row keys sort in row order, so a load walks rows ascending.
struct RowKey {
  explicit RowKey(int32_t row) { AppendBigEndian32(static_cast<uint32_t>(row), &bytes); }
  rocksdb::Slice slice() const { return rocksdb::Slice(bytes); }
  std::string bytes;
};

std::string PositionKey(int32_t stream, int32_t partition) {
  std::string key(kPositionPrefix);
  AppendBigEndian32(static_cast<uint32_t>(stream), &key);
  AppendBigEndian32(static_cast<uint32_t>(partition), &key);
  return key;
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  AppendBigEndian32(static_cast<uint32_t>(v >> 32), out);
  AppendBigEndian32(static_cast<uint32_t>(v), out);
}

// Event ids sort by their number (non-negative, so big-endian order is numeric order).
std::string EventIdKey(int64_t seq) {
  std::string key(kEventIdPrefix);
  AppendBigEndian64(static_cast<uint64_t>(std::max<int64_t>(seq, 0)), &key);
  return key;
}

std::string SourceKey(int32_t stream) {
  std::string key(kSourcePrefix);
  AppendBigEndian32(static_cast<uint32_t>(stream), &key);
  return key;
}

template <typename T>
std::string Fixed(T v) {
  std::string out;
  ByteWriter(&out).Put(v);
  return out;
}

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

rocksdb::ColumnFamilyOptions FamilyOptions(bool compress) {
  rocksdb::ColumnFamilyOptions options;
  // Vectors of floats barely compress; ids and histories do.
  options.compression = compress ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
  // Memtables are switched (and flushed) only by StateStore::Write() (DB::Flush), never by
  // RocksDB in the write path because one is full or the log is long: RocksDB 7.8 switches full
  // memtables there in a loop that, when creating the new log file fails (too many open files),
  // leaks a reference to every other column family waiting to switch — an assertion, and an
  // abort, when the database closes; and a switch there may leave every memtable empty just
  // before a write fails, which DB::Resume() then does not recover from (see WriteLogged()). This
  // size is never reached.
  options.write_buffer_size = size_t{1} << 30;
  options.arena_block_size = 1 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 16 << 10;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

}  // namespace

namespace {

uint64_t Fnv1a(absl::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string BaseFingerprintText(absl::string_view algorithm, const config::Config& config) {
  return absl::StrCat(algorithm, "|dim=", config.dim, "|tied=", config.bpr_tied_context ? 1 : 0);
}

}  // namespace

uint64_t LegacyBlendFingerprint(const config::Config& config) {
  return Fnv1a(BaseFingerprintText("blend", config));
}

uint64_t StateFingerprint(absl::string_view algorithm, const config::Config& config) {
  std::string text = BaseFingerprintText(algorithm, config);
  if (algorithm == "blend") {
    // The blend's rows hold a part per component and its ranker a weight per component and set.
    std::string features = config.blend_features;
    features.erase(std::remove_if(features.begin(), features.end(),
                                  [](unsigned char c) { return std::isspace(c) != 0; }),
                   features.end());
    absl::StrAppend(&text, "|features=", features, "|cold=", config.blend_cold_events > 0 ? 1 : 0,
                    "|start=", config.blend_session_start ? 1 : 0);
    // A part more in its item rows (the fingerprint of a state without it is as it was).
    if (config::BlendTopicsOwnTable(config)) absl::StrAppend(&text, "|topics_table=1");
    // The ranker's weights are learnt on the sparse scores scaled one way: read the other way they
    // would mislead it (states written before blend.sparse_scale, with sd, keep their fingerprint).
    if (config.blend_sparse_scale != "sd") {
      absl::StrAppend(&text, "|sparse_scale=", config.blend_sparse_scale);
    }
  }
  return Fnv1a(text);
}

// --- StateBatch ------------------------------------------------------------------------------

namespace {

// A StateBatch as one RocksDB WriteBatch over the store's column families. Made by
// StateStore::NewBatch(), written by StateStore::Write() and WritePrefix().
class RocksDbStateBatch final : public StateBatch {
 public:
  RocksDbStateBatch(rocksdb::ColumnFamilyHandle* users, rocksdb::ColumnFamilyHandle* history,
                    rocksdb::ColumnFamilyHandle* items, rocksdb::ColumnFamilyHandle* meta,
                    rocksdb::ColumnFamilyHandle* catalog, size_t expected_bytes)
      : batch_(expected_bytes),
        users_(users),
        history_(history),
        items_(items),
        meta_(meta),
        catalog_(catalog) {}

  void PutUser(int32_t row, absl::string_view value) override;
  void PutHistory(int32_t row, absl::string_view value) override;
  void DeleteUser(int32_t row) override;
  void PutItem(int32_t row, absl::string_view value) override;
  void PutGlobals(absl::string_view learner_globals, int64_t events_applied, int64_t users,
                  int64_t items) override;
  void PutPosition(int32_t stream, int32_t partition, int64_t offset) override;
  void PutSource(int32_t stream, absl::string_view name) override;
  void PutModelVersion(int64_t version) override;
  void PutEventId(int64_t seq, absl::string_view id) override;
  void ForgetEventIds(int64_t from, int64_t to) override;
  void PutHiddenItems(const std::vector<std::string>& items) override;
  void PutCatalogItem(absl::string_view item, absl::string_view entry) override;
  void PutIdentity(absl::string_view algorithm, int dim, uint64_t fingerprint,
                   absl::string_view config_toml) override;

  int64_t rows() const override { return rows_; }
  size_t bytes() const override { return batch_.GetDataSize(); }
  int64_t ops() const override { return batch_.Count(); }
  rocksdb::WriteBatch* rep() { return &batch_; }

 private:
  rocksdb::WriteBatch batch_;
  int64_t rows_ = 0;
  rocksdb::ColumnFamilyHandle* const users_;
  rocksdb::ColumnFamilyHandle* const history_;
  rocksdb::ColumnFamilyHandle* const items_;
  rocksdb::ColumnFamilyHandle* const meta_;
  rocksdb::ColumnFamilyHandle* const catalog_;  // null in a read-only view of an older store
};

// The RocksDB batch behind `batch`; InvalidArgument for a batch no StateStore made.
absl::StatusOr<rocksdb::WriteBatch*> RepOf(StateBatch* batch) {
  auto* ours = dynamic_cast<RocksDbStateBatch*>(batch);
  if (ours == nullptr) {
    return absl::InvalidArgumentError("a StateStore writes only batches from StateStore::NewBatch");
  }
  return ours->rep();
}

void RocksDbStateBatch::PutUser(int32_t row, absl::string_view value) {
  batch_.Put(users_, RowKey(row).slice(), ToSlice(value));
  ++rows_;
}

void RocksDbStateBatch::PutHistory(int32_t row, absl::string_view value) {
  batch_.Put(history_, RowKey(row).slice(), ToSlice(value));
}

void RocksDbStateBatch::DeleteUser(int32_t row) {
  const RowKey key(row);
  batch_.Delete(users_, key.slice());
  batch_.Delete(history_, key.slice());
  ++rows_;
}

void RocksDbStateBatch::PutItem(int32_t row, absl::string_view value) {
  batch_.Put(items_, RowKey(row).slice(), ToSlice(value));
  ++rows_;
}

void RocksDbStateBatch::PutGlobals(absl::string_view learner_globals, int64_t events_applied,
                                   int64_t users, int64_t items) {
  batch_.Put(meta_, "globals", ToSlice(learner_globals));
  batch_.Put(meta_, "events_applied", Fixed(events_applied));
  batch_.Put(meta_, "users", Fixed(users));
  batch_.Put(meta_, "items", Fixed(items));
}

void RocksDbStateBatch::PutPosition(int32_t stream, int32_t partition, int64_t offset) {
  batch_.Put(meta_, PositionKey(stream, partition), Fixed(offset));
}

void RocksDbStateBatch::PutEventId(int64_t seq, absl::string_view id) {
  batch_.Put(meta_, EventIdKey(seq), ToSlice(id));
}

void RocksDbStateBatch::ForgetEventIds(int64_t from, int64_t to) {
  if (from < to) batch_.DeleteRange(meta_, EventIdKey(from), EventIdKey(to));
}

void RocksDbStateBatch::PutHiddenItems(const std::vector<std::string>& items) {
  std::string value;
  ByteWriter w(&value);
  w.PutVarint(items.size());
  for (const std::string& item : items) w.PutString(item);
  batch_.Put(meta_, "hidden", value);
}

void RocksDbStateBatch::PutCatalogItem(absl::string_view item, absl::string_view entry) {
  if (catalog_ == nullptr) return;  // a read-only store writes nothing
  batch_.Put(catalog_, ToSlice(item), ToSlice(entry));
}

void RocksDbStateBatch::PutSource(int32_t stream, absl::string_view name) {
  batch_.Put(meta_, SourceKey(stream), ToSlice(name));
}

void RocksDbStateBatch::PutModelVersion(int64_t version) {
  batch_.Put(meta_, "model_version", Fixed(version));
}

void RocksDbStateBatch::PutIdentity(absl::string_view algorithm, int dim, uint64_t fingerprint,
                                    absl::string_view config_toml) {
  batch_.Put(meta_, "format", Fixed(kStoreFormat));
  batch_.Put(meta_, "algorithm", ToSlice(algorithm));
  batch_.Put(meta_, "dim", Fixed(static_cast<int32_t>(dim)));
  batch_.Put(meta_, "fingerprint", Fixed(fingerprint));
  batch_.Put(meta_, "config", ToSlice(config_toml));
}

}  // namespace

// --- StateStore ------------------------------------------------------------------------------

namespace {

// Counts the write-ahead-log records a recovery replays (Options::accept_wal_loss).
class CountingWalFilter : public rocksdb::WalFilter {
 public:
  WalProcessingOption LogRecordFound(unsigned long long /*log_number*/,
                                     const std::string& /*log_file_name*/,
                                     const rocksdb::WriteBatch& /*batch*/,
                                     rocksdb::WriteBatch* /*new_batch*/,
                                     bool* /*batch_changed*/) override {
    ++records;
    return WalProcessingOption::kContinueProcessing;
  }
  const char* Name() const override { return "freshet.CountingWalFilter"; }
  int64_t records = 0;
};

// RocksDB's warnings about write-ahead-log records it could not read ("D/000012.log: dropping
// 200 bytes; Corruption: checksum mismatch"), without the source location it prefixes.
std::vector<std::string> WalCorruption(const std::vector<std::string>& warnings) {
  std::vector<std::string> out;
  for (const std::string& w : warnings) {
    const size_t at = w.find(".log: dropping ");
    if (at == std::string::npos) continue;
    const size_t source_end = w.rfind("] ", at);
    out.push_back(source_end == std::string::npos ? w : w.substr(source_end + 2));
  }
  return out;
}

// The first of those warnings, and how much more was unreadable.
std::string CorruptionSummary(const std::vector<std::string>& corruption) {
  if (corruption.empty()) return "";
  int64_t bytes = 0;
  for (const std::string& line : corruption) {
    const size_t at = line.find(": dropping ");
    int64_t n = 0;
    if (at != std::string::npos &&
        absl::SimpleAtoi(absl::string_view(line).substr(at + 11, line.find(' ', at + 11) - at - 11),
                         &n)) {
      bytes += n;
    }
  }
  if (corruption.size() == 1) return corruption[0];
  return absl::StrCat(corruption[0], "; then ", corruption.size() - 1, " more unreadable pieces, ",
                      bytes, " bytes unreadable in all");
}

}  // namespace

rocksdb::Status StateStore::OpenDb(const rocksdb::DBOptions& db_options) {
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, FamilyOptions(false)},
      {kUsers, FamilyOptions(false)},
      {kHistory, FamilyOptions(true)},
      {kItems, FamilyOptions(false)},
      {kMeta, FamilyOptions(false)},
  };
  // The catalog family: created by a writable open; a read-only one opens it when it is there.
  std::vector<std::string> existing;
  bool has_catalog = !options_.read_only;
  if (options_.read_only && rocksdb::DB::ListColumnFamilies(db_options, dir_, &existing).ok()) {
    has_catalog = std::find(existing.begin(), existing.end(), kCatalog) != existing.end();
  }
  if (has_catalog) families.push_back({kCatalog, FamilyOptions(true)});
  rocksdb::DB* db = nullptr;
  rocksdb::Status s;
  if (options_.read_only) {
    // Beside a running server a file listed at open may be deleted (a log after a flush, a table
    // after a compaction) before it is read: try again on a fresh listing.
    for (int attempt = 0; attempt < 20; ++attempt) {
      handles_.clear();
      s = rocksdb::DB::OpenForReadOnly(db_options, dir_, families, &handles_, &db);
      if (!s.IsIOError() && !s.IsPathNotFound()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  } else {
    handles_.clear();
    s = rocksdb::DB::Open(db_options, dir_, families, &handles_, &db);
  }
  if (s.ok()) db_.reset(db);
  return s;
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir,
                                                             const Options& options) {
  std::unique_ptr<StateStore> store(new StateStore());
  store->dir_ = dir;
  store->options_ = options;
  if (!options.create_if_missing || options.read_only) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec)) {
      return absl::NotFoundError(absl::StrCat("no freshet state in ", dir));
    }
  }

  store->env_ = rocksdb::NewCompositeEnv(NewTransientErrorFileSystem(
      options.file_system != nullptr ? options.file_system : rocksdb::FileSystem::Default()));
  // A read-only open (beside a running server) writes no LOG: it only remembers the warnings.
  store->logger_ = std::make_shared<StoreLogger>(options.read_only ? "" : dir, /*keep_old=*/4);
  store->listener_ = std::make_shared<StoreListener>();

  rocksdb::DBOptions db_options;
  db_options.env = store->env_.get();
  // Flushes and compactions are background work: they run when nothing else wants the cores
  // (RocksDB's kIdle is SCHED_IDLE). The composite environment shares the default one's threads.
  db_options.env
      ->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kIdle)
      .PermitUncheckedError();
  db_options.env
      ->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH, rocksdb::CpuPriority::kIdle)
      .PermitUncheckedError();
  db_options.create_if_missing = options.create_if_missing && !options.read_only;
  db_options.create_missing_column_families = !options.read_only;
  db_options.max_background_jobs = 2;
  db_options.paranoid_checks = true;
  db_options.info_log = store->logger_;
  // Error recovery is the persister's (store_io.h): no automatic recovery, DB::Resume() instead.
  db_options.listeners.push_back(store->listener_);
  db_options.max_bgerror_resume_count = 0;
  // The write-ahead log may end in a record a crash cut short (nothing acknowledged it: the
  // batch is written again); any other damage is corruption and refuses the open, naming the
  // file. Point-in-time recovery (RocksDB's default) would stop silently at the first corrupt
  // record and drop everything after it — after a flipped byte, a start from an empty state.
  // See store/README.md.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // After a crash the log is replayed into memtables only (no table files written during open),
  // so a restart is ready sooner; the memtables are flushed later in the background.
  db_options.avoid_flush_during_recovery = true;
  // What a restart after a crash must replay is bounded by StateStore::Write(), which flushes
  // the memtables once they hold Options::memtable_bytes (64 MiB); RocksDB's own limit on the log
  // (max_total_wal_size, by default 4 times the memtables' size limit) is never reached.

  rocksdb::Status s = store->OpenDb(db_options);
  const std::vector<std::string> corruption = WalCorruption(store->logger_->Warnings());
  if (s.IsCorruption() && !corruption.empty()) {
    const std::string data_dir = std::filesystem::path(dir).parent_path().string();
    if (!options.accept_wal_loss) {
      return absl::DataLossError(absl::StrCat(
          "the write-ahead log of the state in ", dir, " is corrupt (",
          CorruptionSummary(corruption),
          "), not merely cut short by a crash; refusing to start from part of the state. "
          "Restore a snapshot (freshet snapshot list --data-dir ",
          data_dir, ", then freshet snapshot restore --data-dir ", data_dir,
          " --id ID), or accept losing every write after the first corrupt record with "
          "--set store.accept_wal_loss=true for one start (sources then resume after the "
          "recovered positions: a broker re-delivers what it still holds; events posted "
          "directly since then are lost)"));
    }
    // What the log holds intact, corrupt records skipped (read-only: nothing changes)...
    auto skip_counter = std::make_unique<CountingWalFilter>();
    {
      rocksdb::DBOptions count_options = db_options;
      count_options.info_log = std::make_shared<StoreLogger>("", 0);
      count_options.listeners.clear();
      count_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
      count_options.wal_filter = skip_counter.get();
      StateStore counting;
      counting.dir_ = dir;
      counting.options_ = options;
      counting.options_.read_only = true;
      s = counting.OpenDb(count_options);
      if (!s.ok()) {
        // Only the count is lost: the recovery below reads no further than the first corruption.
        LogWarning(absl::StrCat("store.accept_wal_loss: cannot count the intact records of the ",
                                "corrupt write-ahead log of ", dir, " (", s.ToString(), ")"));
        skip_counter.reset();
      }
    }
    // ... and what a recovery up to the first corruption keeps. The recovered state is written to
    // table files during the open, so the damaged log is not needed (nor replayed) again.
    auto kept_counter = std::make_unique<CountingWalFilter>();
    db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    db_options.avoid_flush_during_recovery = false;
    db_options.wal_filter = kept_counter.get();
    s = store->OpenDb(db_options);
    if (s.ok()) {
      store->wal_loss_.records_total = skip_counter ? skip_counter->records : -1;
      store->wal_loss_.records_dropped =
          skip_counter ? std::max<int64_t>(0, skip_counter->records - kept_counter->records) : -1;
      store->wal_loss_.corruption = corruption;
      const std::string dropped =
          skip_counter
              ? absl::StrCat(store->wal_loss_.records_dropped, " intact records after it (of ",
                             skip_counter->records, " in the log")
              : absl::StrCat("every record after it (the log could not be read past it to ",
                             "count them; ", kept_counter->records, " recovered");
      LogWarning(absl::StrCat(
          "store.accept_wal_loss: the write-ahead log of ", dir, " is corrupt (",
          CorruptionSummary(corruption),
          "); recovered the state up to the first corrupt "
          "record and DROPPED ",
          dropped,
          "; each one written batch: the rows of a flush "
          "interval with their source positions). Sources resume after the recovered positions"));
    }
    store->wal_counter_ = std::move(kept_counter);
  }
  if (s.IsCorruption()) {
    const std::string data_dir = std::filesystem::path(dir).parent_path().string();
    return absl::DataLossError(absl::StrCat(
        "opening the state store in ", dir, ": ", s.ToString(),
        ". The database is damaged; restore a snapshot (freshet snapshot list --data-dir ",
        data_dir, ", then freshet snapshot restore --data-dir ", data_dir, " --id ID)"));
  }
  FRESHET_RETURN_IF_ERROR(FromRocksDb(s, absl::StrCat("opening the state store in ", dir)));
  rocksdb::DB* db = store->db_.get();
  store->users_ = store->handles_[1];
  store->history_ = store->handles_[2];
  store->items_ = store->handles_[3];
  store->meta_ = store->handles_[4];
  store->catalog_ = store->handles_.size() > 5 ? store->handles_[5] : nullptr;

  std::string format;
  s = db->Get(rocksdb::ReadOptions(), store->meta_, "format", &format);
  if (s.ok()) {
    if (format.size() != 1 || static_cast<uint8_t>(format[0]) != kStoreFormat) {
      return absl::DataLossError(
          absl::StrCat(dir, ": meta key 'format': unknown store layout version ",
                       format.size() == 1 ? static_cast<int>(static_cast<uint8_t>(format[0])) : -1,
                       " (this build reads ", static_cast<int>(kStoreFormat), ")"));
    }
  } else if (!s.IsNotFound()) {
    return FromRocksDb(s, absl::StrCat(dir, ": reading meta key 'format'"));
  }
  return store;
}

StateStore::StateStore() = default;

StateStore::~StateStore() {
  if (db_ == nullptr) return;
  if (!options_.read_only) {
    // A clean close leaves nothing in the write-ahead log, so the next open replays nothing.
    MutexLock lock(&write_mu_);
    rocksdb::FlushOptions flush;
    db_->Flush(flush, std::vector<rocksdb::ColumnFamilyHandle*>(handles_.begin(), handles_.end()))
        .PermitUncheckedError();
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

std::unique_ptr<StateBatch> StateStore::NewBatch(size_t expected_bytes) {
  return std::make_unique<RocksDbStateBatch>(users_, history_, items_, meta_, catalog_,
                                             expected_bytes);
}

absl::Status StateStore::Write(StateBatch* batch) {
  if (options_.read_only) return absl::FailedPreconditionError("the state store is read-only");
  FRESHET_ASSIGN_OR_RETURN(rocksdb::WriteBatch * rep, RepOf(batch));
  return WriteLogged(rep, absl::StrCat("writing ", batch->rows(), " rows to ", dir_));
}

absl::Status StateStore::WriteLogged(rocksdb::WriteBatch* batch, absl::string_view what) {
  MutexLock lock(&write_mu_);
  // A write RocksDB failed left it refusing writes (a hard background error) until resumed. A
  // failed write changed nothing (its log record is torn at most, and never replayed: a torn
  // record ends the log, and the resume below switches to a new log file), so the same batch is
  // simply written again.
  if (needs_resume_.load(std::memory_order_acquire) || !listener_->error().empty()) {
    FRESHET_RETURN_IF_ERROR(ResumeLocked());
  }
  // RocksDB 7.8 resumes by flushing the memtables, and switches to a new log file only when one of
  // them holds something: with every memtable empty it keeps the log file whose last write failed,
  // and the next write to it aborts the process (an assertion). An unlogged marker in the default
  // column family (unused otherwise) keeps a memtable non-empty at every logged write.
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;
  rocksdb::Status s = db_->Put(unlogged, handles_[0], "resume-guard", rocksdb::Slice());
  if (s.ok()) {
    rocksdb::WriteOptions write;
    write.sync = options_.sync;
    s = db_->Write(write, batch);
  }
  if (!s.ok()) {
    needs_resume_.store(true, std::memory_order_release);
    return FromRocksDb(s, what);
  }
  // Memtables full enough: switched to a new log file and flushed, here and now (waiting for it,
  // so that no flush is ever still in progress when a later write resumes RocksDB: 7.8's resume
  // can then wait forever). A failure here is RocksDB's background error now (the next write
  // resumes); this write is in the log.
  uint64_t memtables = 0;
  const uint64_t limit = options_.memtable_bytes > 0 ? options_.memtable_bytes : uint64_t{64} << 20;
  if (db_->GetAggregatedIntProperty("rocksdb.cur-size-active-mem-table", &memtables) &&
      memtables >= limit) {
    rocksdb::FlushOptions flush;
    flush.allow_write_stall = true;
    if (!db_->Flush(flush, handles_).ok()) needs_resume_.store(true, std::memory_order_release);
  }
  return absl::OkStatus();
}

absl::Status StateStore::Resume() {
  MutexLock lock(&write_mu_);
  return ResumeLocked();
}

absl::Status StateStore::ResumeLocked() {
  if (options_.read_only) return absl::OkStatus();
  const rocksdb::Status s = db_->Resume();
  if (!s.ok()) {
    return FromRocksDb(
        s, absl::StrCat("resuming the state store in ", dir_, " after a write error",
                        s.severity() >= rocksdb::Status::Severity::kFatalError
                            ? " (RocksDB does not resume after this error; restarting freshet "
                              "replays the write-ahead log)"
                            : ""));
  }
  needs_resume_.store(false, std::memory_order_release);
  listener_->Clear();
  return absl::OkStatus();
}

absl::Status StateStore::Health() const {
  const std::string error = listener_->error();
  if (!error.empty()) {
    return absl::UnavailableError(
        absl::StrCat(dir_, ": RocksDB stopped writing after a background error: ", error));
  }
  return absl::OkStatus();
}

absl::Status StateStore::VerifyChecksums() const {
  return FromRocksDb(db_->VerifyChecksum(), absl::StrCat("verifying the table files of ", dir_));
}

absl::Status StateStore::WritePrefix(StateBatch* batch, int64_t ops) {
  class Prefix : public rocksdb::WriteBatch::Handler {
   public:
    Prefix(const std::vector<rocksdb::ColumnFamilyHandle*>& handles, int64_t ops)
        : handles_(handles), left_(ops) {}
    rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      if (left_-- > 0) return out.Put(Handle(id), key, value);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
      if (left_-- > 0) return out.Delete(Handle(id), key);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t id, const rocksdb::Slice& begin,
                                  const rocksdb::Slice& end) override {
      if (left_-- > 0) return out.DeleteRange(Handle(id), begin, end);
      return rocksdb::Status::OK();
    }
    rocksdb::WriteBatch out;

   private:
    rocksdb::ColumnFamilyHandle* Handle(uint32_t id) const {
      for (rocksdb::ColumnFamilyHandle* h : handles_) {
        if (h->GetID() == id) return h;
      }
      return handles_[0];
    }
    const std::vector<rocksdb::ColumnFamilyHandle*>& handles_;
    int64_t left_;
  };
  FRESHET_ASSIGN_OR_RETURN(rocksdb::WriteBatch * rep, RepOf(batch));
  Prefix prefix(handles_, ops);
  FRESHET_RETURN_IF_ERROR(FromRocksDb(rep->Iterate(&prefix), "splitting a batch"));
  return WriteLogged(&prefix.out, "writing a batch prefix");
}

absl::StatusOr<StoreMeta> StateStore::ReadMeta() const {
  StoreMeta meta;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    if (absl::StartsWith(key, kEventIdPrefix)) {  // LoadEventIds() reads them
      meta.empty = false;
      it->Seek("eid0");  // the first key after the prefix ('0' follows '/')
      if (!it->Valid()) break;
      it->Prev();
      continue;
    }
    const absl::string_view value = ToView(it->value());
    meta.empty = false;
    ByteReader r(value);
    bool ok = true;
    if (key == "algorithm") {
      meta.algorithm = std::string(value);
    } else if (key == "dim") {
      int32_t dim = 0;
      ok = r.Get(&dim) && r.done();
      meta.dim = dim;
    } else if (key == "fingerprint") {
      ok = r.Get(&meta.fingerprint) && r.done();
    } else if (key == "config") {
      meta.config_toml = std::string(value);
    } else if (key == "events_applied") {
      ok = r.Get(&meta.events_applied) && r.done();
    } else if (key == "hidden") {
      uint64_t n = 0;
      ok = r.GetVarint(&n) && n <= (uint64_t{1} << 24);
      for (uint64_t i = 0; ok && i < n; ++i) {
        std::string item;
        ok = r.GetString(&item);
        meta.hidden_items.push_back(std::move(item));
      }
      ok = ok && r.done();
    } else if (key == "users") {
      ok = r.Get(&meta.users) && r.done();
    } else if (key == "items") {
      ok = r.Get(&meta.items) && r.done();
    } else if (key == "model_version") {
      ok = r.Get(&meta.model_version) && r.done();
    } else if (key.substr(0, kSourcePrefix.size()) == kSourcePrefix) {
      ok = key.size() == kSourcePrefix.size() + 4;
      if (ok) {
        const uint32_t stream = ReadBigEndian32(key.substr(kSourcePrefix.size()));
        ok = stream < 4096;
        if (ok) {
          if (meta.sources.size() <= stream) meta.sources.resize(stream + 1);
          meta.sources[stream] = std::string(value);
        }
      }
    } else if (key.substr(0, kPositionPrefix.size()) == kPositionPrefix) {
      StoredPosition p;
      ok = key.size() == kPositionPrefix.size() + 8 && r.Get(&p.offset) && r.done();
      if (ok) {
        p.stream = static_cast<int32_t>(ReadBigEndian32(key.substr(kPositionPrefix.size())));
        p.partition = static_cast<int32_t>(ReadBigEndian32(key.substr(kPositionPrefix.size() + 4)));
        meta.positions.push_back(p);
      }
    }
    if (!ok) {
      return absl::DataLossError(absl::StrCat(dir_, ": meta key '", absl::CEscape(key),
                                              "' holds a malformed value (", value.size(),
                                              " bytes)"));
    }
  }
  FRESHET_RETURN_IF_ERROR(FromRocksDb(it->status(), absl::StrCat("reading meta of ", dir_)));
  return meta;
}

absl::Status StateStore::LoadCatalog(
    const std::function<absl::Status(absl::string_view, absl::string_view)>& visit) const {
  if (catalog_ == nullptr) return absl::OkStatus();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), catalog_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    FRESHET_RETURN_IF_ERROR(visit(ToView(it->key()), ToView(it->value())));
  }
  return FromRocksDb(it->status(), absl::StrCat("reading the item catalog in ", dir_));
}

absl::Status StateStore::LoadEventIds(
    const std::function<void(int64_t, absl::string_view)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->Seek(ToSlice(kEventIdPrefix)); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    if (!absl::StartsWith(key, kEventIdPrefix)) break;
    if (key.size() != kEventIdPrefix.size() + 8) {
      return absl::DataLossError(
          absl::StrCat(dir_, ": event id key '", absl::CEscape(key), "' is malformed"));
    }
    const absl::string_view number = key.substr(kEventIdPrefix.size());
    const uint64_t seq =
        (uint64_t{ReadBigEndian32(number)} << 32) | ReadBigEndian32(number.substr(4));
    visit(static_cast<int64_t>(seq), ToView(it->value()));
  }
  return FromRocksDb(it->status(), absl::StrCat("reading the event ids of ", dir_));
}

absl::Status StateStore::LoadFamily(
    rocksdb::ColumnFamilyHandle* family, absl::string_view what,
    const std::function<absl::Status(int32_t, absl::string_view)>& load) const {
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  read.readahead_size = 4 << 20;
  read.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, family));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    if (key.size() != 4) {
      return absl::DataLossError(
          absl::StrCat(dir_, ": ", what, " key '", absl::CEscape(key), "' is not a row number"));
    }
    const uint32_t row = ReadBigEndian32(key);
    const absl::Status s = load(static_cast<int32_t>(row), ToView(it->value()));
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat(dir_, ": ", what, " key ", row, ": ", s.message()));
    }
  }
  return FromRocksDb(it->status(), absl::StrCat("reading ", what, " of ", dir_));
}

absl::Status StateStore::LoadInto(EncodedRowSink* sink) const {
  std::string globals;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, "globals", &globals);
  if (s.IsNotFound()) return absl::OkStatus();  // nothing stored yet
  FRESHET_RETURN_IF_ERROR(FromRocksDb(s, absl::StrCat("reading meta 'globals' of ", dir_)));
  absl::Status begin = sink->BeginLoad(globals);
  if (absl::IsDataLoss(begin)) {
    return absl::DataLossError(absl::StrCat(dir_, ": meta key 'globals': ", begin.message()));
  }
  FRESHET_RETURN_IF_ERROR(begin);

  absl::Status history_status;
  std::thread history_thread([&] {
    history_status = LoadFamily(history_, kHistory, [sink](int32_t row, absl::string_view v) {
      return sink->LoadHistory(row, v);
    });
  });
  absl::Status users_status = LoadFamily(
      users_, kUsers, [sink](int32_t row, absl::string_view v) { return sink->LoadUser(row, v); });
  absl::Status items_status = LoadFamily(
      items_, kItems, [sink](int32_t row, absl::string_view v) { return sink->LoadItem(row, v); });
  history_thread.join();
  FRESHET_RETURN_IF_ERROR(users_status);
  FRESHET_RETURN_IF_ERROR(history_status);
  FRESHET_RETURN_IF_ERROR(items_status);
  absl::Status finish = sink->FinishLoad();
  if (!finish.ok()) return absl::DataLossError(absl::StrCat(dir_, ": ", finish.message()));
  return absl::OkStatus();
}

absl::Status StateStore::Checkpoint(const std::string& dir) {
  // Its flush is not run beside a write's resume or flush: a flush RocksDB 7.8 still has in
  // progress when DB::Resume() flushes can leave the resume waiting forever.
  MutexLock lock(&write_mu_);
  rocksdb::Checkpoint* raw = nullptr;
  FRESHET_RETURN_IF_ERROR(
      FromRocksDb(rocksdb::Checkpoint::Create(db_.get(), &raw), "preparing a checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: flush the memtables first, so the checkpoint is table files only.
  return FromRocksDb(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                     absl::StrCat("creating a checkpoint in ", dir));
}

absl::Status StateStore::Clear() {
  for (rocksdb::ColumnFamilyHandle* family : {users_, history_, items_, meta_, catalog_}) {
    if (family == nullptr) continue;
    rocksdb::WriteBatch batch;
    // The whole key space of a family: row keys are 4 bytes, meta keys are short text, catalog
    // keys are item ids (at most max_id_bytes, far below this).
    FRESHET_RETURN_IF_ERROR(FromRocksDb(batch.DeleteRange(family, "", std::string(4096, '\xff')),
                                        "clearing the state store"));
    FRESHET_RETURN_IF_ERROR(
        WriteLogged(&batch, absl::StrCat("clearing the state store in ", dir_)));
  }
  return absl::OkStatus();
}

int64_t StateStore::SizeOnDisk() const {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.is_regular_file(ec)) total += static_cast<int64_t>(entry.file_size(ec));
  }
  return total;
}

}  // namespace freshet::store
