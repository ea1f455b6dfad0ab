// The RocksDB plumbing that keeps the state store alive through I/O errors, and tells what went
// wrong. StateStore::Open() installs all three.
//
//   StoreLogger      RocksDB's info log (D/db/LOG). RocksDB 7.8's own logger aborts the process
//                    on the line after a failed write (an assertion, kept in Debian's build) — a
//                    full disk killed the server. This one writes each line with write(2) and
//                    drops it when that fails. It also keeps the latest warnings, so that an open
//                    refused for a corrupt write-ahead log can name the file and what was dropped.
//   StoreListener    Takes error recovery away from RocksDB: its own recovery from a full disk
//                    waits (checking every 5 s) for as much free space as one memtable (32 MiB)
//                    and meanwhile refuses DB::Resume() as busy — on a small disk, forever. The
//                    listener turns that off and records the background error; the persister
//                    retries, and StateStore::Write() calls DB::Resume() first.
//   TransientErrorFileSystem
//                    Marks "too many open files" (EMFILE, ENFILE) as retryable. RocksDB ranks an
//                    I/O error it cannot classify as fatal, and a fatal error is never resumed;
//                    a retryable one is a hard error that DB::Resume() clears once files can be
//                    opened again. A full disk is already a hard error. Other I/O errors (EIO) stay
//                    fatal: a failed fsync may have lost written data, so only a restart, which
//                    replays the write-ahead log, is trusted after one.
#ifndef FRESHET_STORE_ROCKSDB_STORE_IO_H_
#define FRESHET_STORE_ROCKSDB_STORE_IO_H_

#include <cstdarg>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/listener.h"

namespace freshet::store {

class StoreLogger : public rocksdb::Logger {
 public:
  // Appends to `dir`/LOG after moving the previous LOG aside (LOG.old.<micros>, the newest
  // `keep_old` kept), as RocksDB's logger does. With an empty `dir` nothing is written (a
  // read-only open must not touch the directory of a running server): lines are only remembered.
  StoreLogger(const std::string& dir, int keep_old);
  ~StoreLogger() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  void Logv(rocksdb::InfoLogLevel level, const char* format, va_list ap) override;
  void LogHeader(const char* format, va_list ap) override;

  // The warnings and errors logged so far (the latest 64), oldest first.
  std::vector<std::string> Warnings() const;

 private:
  void Write(rocksdb::InfoLogLevel level, const char* format, va_list ap);

  int fd_ = -1;
  mutable Mutex mu_;
  std::vector<std::string> warnings_ ABSL_GUARDED_BY(mu_);
};

class StoreListener : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "freshet.StoreListener"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override;
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status error,
                            bool* auto_recovery) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

  // The latest background error RocksDB reported and nothing has cleared yet; empty: none.
  std::string error() const;
  void Clear();

 private:
  mutable Mutex mu_;
  std::string error_ ABSL_GUARDED_BY(mu_);
};

std::shared_ptr<rocksdb::FileSystem> NewTransientErrorFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base);

}  // namespace freshet::store

#endif  // FRESHET_STORE_ROCKSDB_STORE_IO_H_
