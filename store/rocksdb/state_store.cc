#include "store/rocksdb/state_store.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "store/rocksdb/status.h"

namespace freshet::store {
namespace {

constexpr const char* kUsers = "users";
constexpr const char* kHistory = "history";
constexpr const char* kItems = "items";
constexpr const char* kMeta = "meta";

constexpr absl::string_view kPositionPrefix = "pos/";
constexpr absl::string_view kSourcePrefix = "source/";

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
  options.write_buffer_size = 32 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 16 << 10;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

}  // namespace

uint64_t StateFingerprint(absl::string_view algorithm, const config::Config& config) {
  const std::string text =
      absl::StrCat(algorithm, "|dim=", config.dim, "|tied=", config.bpr_tied_context ? 1 : 0);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// --- StateBatch ------------------------------------------------------------------------------

void StateBatch::PutUser(int32_t row, absl::string_view value) {
  batch_.Put(users_, RowKey(row).slice(), ToSlice(value));
  ++rows_;
}

void StateBatch::PutHistory(int32_t row, absl::string_view value) {
  batch_.Put(history_, RowKey(row).slice(), ToSlice(value));
}

void StateBatch::DeleteUser(int32_t row) {
  const RowKey key(row);
  batch_.Delete(users_, key.slice());
  batch_.Delete(history_, key.slice());
  ++rows_;
}

void StateBatch::PutItem(int32_t row, absl::string_view value) {
  batch_.Put(items_, RowKey(row).slice(), ToSlice(value));
  ++rows_;
}

void StateBatch::PutGlobals(absl::string_view learner_globals, int64_t events_applied,
                            int64_t users, int64_t items) {
  batch_.Put(meta_, "globals", ToSlice(learner_globals));
  batch_.Put(meta_, "events_applied", Fixed(events_applied));
  batch_.Put(meta_, "users", Fixed(users));
  batch_.Put(meta_, "items", Fixed(items));
}

void StateBatch::PutPosition(int32_t stream, int32_t partition, int64_t offset) {
  batch_.Put(meta_, PositionKey(stream, partition), Fixed(offset));
}

void StateBatch::PutHiddenItems(const std::vector<std::string>& items) {
  std::string value;
  ByteWriter w(&value);
  w.PutVarint(items.size());
  for (const std::string& item : items) w.PutString(item);
  batch_.Put(meta_, "hidden", value);
}

void StateBatch::PutSource(int32_t stream, absl::string_view name) {
  batch_.Put(meta_, SourceKey(stream), ToSlice(name));
}

void StateBatch::PutModelVersion(int64_t version) {
  batch_.Put(meta_, "model_version", Fixed(version));
}

void StateBatch::PutIdentity(absl::string_view algorithm, int dim, uint64_t fingerprint,
                             absl::string_view config_toml) {
  batch_.Put(meta_, "format", Fixed(kStoreFormat));
  batch_.Put(meta_, "algorithm", ToSlice(algorithm));
  batch_.Put(meta_, "dim", Fixed(static_cast<int32_t>(dim)));
  batch_.Put(meta_, "fingerprint", Fixed(fingerprint));
  batch_.Put(meta_, "config", ToSlice(config_toml));
}

// --- StateStore ------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir,
                                                              const Options& options) {
  std::unique_ptr<StateStore> store(new StateStore());
  store->dir_ = dir;
  store->options_ = options;

  rocksdb::DBOptions db_options;
  // Flushes and compactions are background work: they run when nothing else wants the cores
  // (RocksDB's kIdle is SCHED_IDLE).
  db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW,
                                             rocksdb::CpuPriority::kIdle).PermitUncheckedError();
  db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH,
                                             rocksdb::CpuPriority::kIdle).PermitUncheckedError();
  db_options.create_if_missing = options.create_if_missing && !options.read_only;
  db_options.create_missing_column_families = !options.read_only;
  db_options.max_background_jobs = 2;
  db_options.paranoid_checks = true;
  db_options.keep_log_file_num = 4;
  // A crash can leave a torn record at the WAL's tail; recovery stops there, so the database is
  // exactly the batches written before it.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // After a crash the log is replayed into memtables only (no table files written during open),
  // so a restart is ready sooner; the memtables are flushed later in the background.
  db_options.avoid_flush_during_recovery = true;
  // What a restart after a crash must replay is bounded: beyond this much log the oldest
  // memtables are flushed to table files.
  db_options.max_total_wal_size = 64 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, FamilyOptions(false)},
      {kUsers, FamilyOptions(false)},
      {kHistory, FamilyOptions(true)},
      {kItems, FamilyOptions(false)},
      {kMeta, FamilyOptions(false)},
  };
  if (!options.create_if_missing || options.read_only) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec)) {
      return absl::NotFoundError(absl::StrCat("no freshet state in ", dir));
    }
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s;
  if (options.read_only) {
    // Beside a running server a file listed at open may be deleted (a log after a flush, a table
    // after a compaction) before it is read: try again on a fresh listing.
    for (int attempt = 0; attempt < 20; ++attempt) {
      store->handles_.clear();
      s = rocksdb::DB::OpenForReadOnly(db_options, dir, families, &store->handles_, &db);
      if (!s.IsIOError() && !s.IsPathNotFound()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  } else {
    s = rocksdb::DB::Open(db_options, dir, families, &store->handles_, &db);
  }
  FRESHET_RETURN_IF_ERROR(FromRocksDb(s, absl::StrCat("opening the state store in ", dir)));
  store->db_.reset(db);
  store->users_ = store->handles_[1];
  store->history_ = store->handles_[2];
  store->items_ = store->handles_[3];
  store->meta_ = store->handles_[4];

  std::string format;
  s = db->Get(rocksdb::ReadOptions(), store->meta_, "format", &format);
  if (s.ok()) {
    if (format.size() != 1 || static_cast<uint8_t>(format[0]) != kStoreFormat) {
      return absl::DataLossError(absl::StrCat(
          dir, ": meta key 'format': unknown store layout version ",
          format.size() == 1 ? static_cast<int>(static_cast<uint8_t>(format[0])) : -1,
          " (this build reads ", static_cast<int>(kStoreFormat), ")"));
    }
  } else if (!s.IsNotFound()) {
    return FromRocksDb(s, absl::StrCat(dir, ": reading meta key 'format'"));
  }
  return store;
}

StateStore::~StateStore() {
  if (db_ == nullptr) return;
  if (!options_.read_only) {
    // A clean close leaves nothing in the write-ahead log, so the next open replays nothing.
    rocksdb::FlushOptions flush;
    db_->Flush(flush, std::vector<rocksdb::ColumnFamilyHandle*>(handles_.begin(), handles_.end()))
        .PermitUncheckedError();
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

std::unique_ptr<StateBatch> StateStore::NewBatch() {
  auto batch = std::make_unique<StateBatch>();
  batch->users_ = users_;
  batch->history_ = history_;
  batch->items_ = items_;
  batch->meta_ = meta_;
  return batch;
}

absl::Status StateStore::Write(StateBatch* batch) {
  if (options_.read_only) return absl::FailedPreconditionError("the state store is read-only");
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  return FromRocksDb(db_->Write(write, batch->rep()),
                     absl::StrCat("writing ", batch->rows(), " rows to ", dir_));
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
  Prefix prefix(handles_, ops);
  FRESHET_RETURN_IF_ERROR(FromRocksDb(batch->rep()->Iterate(&prefix), "splitting a batch"));
  return FromRocksDb(db_->Write(rocksdb::WriteOptions(), &prefix.out), "writing a batch prefix");
}

absl::StatusOr<StoreMeta> StateStore::ReadMeta() const {
  StoreMeta meta;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
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
      return absl::DataLossError(absl::StrCat(dir_, ": ", what, " key '", absl::CEscape(key),
                                              "' is not a row number"));
    }
    const uint32_t row = ReadBigEndian32(key);
    const absl::Status s = load(static_cast<int32_t>(row), ToView(it->value()));
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat(dir_, ": ", what, " key ", row, ": ", s.message()));
    }
  }
  return FromRocksDb(it->status(), absl::StrCat("reading ", what, " of ", dir_));
}

absl::Status StateStore::LoadInto(learner::Learner* learner) const {
  std::string globals;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, "globals", &globals);
  if (s.IsNotFound()) return absl::OkStatus();  // nothing stored yet
  FRESHET_RETURN_IF_ERROR(FromRocksDb(s, absl::StrCat("reading meta 'globals' of ", dir_)));
  absl::Status begin = learner->BeginLoad(globals);
  if (absl::IsDataLoss(begin)) {
    return absl::DataLossError(absl::StrCat(dir_, ": meta key 'globals': ", begin.message()));
  }
  FRESHET_RETURN_IF_ERROR(begin);

  absl::Status history_status;
  std::thread history_thread([&] {
    history_status = LoadFamily(history_, kHistory, [learner](int32_t row, absl::string_view v) {
      return learner->LoadHistory(row, v);
    });
  });
  absl::Status users_status = LoadFamily(users_, kUsers, [learner](int32_t row, absl::string_view v) {
    return learner->LoadUser(row, v);
  });
  absl::Status items_status = LoadFamily(items_, kItems, [learner](int32_t row, absl::string_view v) {
    return learner->LoadItem(row, v);
  });
  history_thread.join();
  FRESHET_RETURN_IF_ERROR(users_status);
  FRESHET_RETURN_IF_ERROR(history_status);
  FRESHET_RETURN_IF_ERROR(items_status);
  absl::Status finish = learner->FinishLoad();
  if (!finish.ok()) return absl::DataLossError(absl::StrCat(dir_, ": ", finish.message()));
  return absl::OkStatus();
}

absl::Status StateStore::Checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  FRESHET_RETURN_IF_ERROR(
      FromRocksDb(rocksdb::Checkpoint::Create(db_.get(), &raw), "preparing a checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: flush the memtables first, so the checkpoint is table files only.
  return FromRocksDb(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                     absl::StrCat("creating a checkpoint in ", dir));
}

absl::Status StateStore::Clear() {
  for (rocksdb::ColumnFamilyHandle* family : {users_, history_, items_, meta_}) {
    rocksdb::WriteBatch batch;
    // The whole key space of a family: row keys are 4 bytes, meta keys are short text.
    FRESHET_RETURN_IF_ERROR(FromRocksDb(batch.DeleteRange(family, "", std::string(16, '\xff')),
                                        "clearing the state store"));
    FRESHET_RETURN_IF_ERROR(FromRocksDb(db_->Write(rocksdb::WriteOptions(), &batch),
                                        absl::StrCat("clearing the state store in ", dir_)));
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
