// A RocksDB file system that fails on demand, then heals — in the manner of leveldb's
// FaultInjectionTestEnv (db/fault_injection_test.cc): writes, syncs and file opens fail with the
// errors the POSIX file system reports for a full disk and for exhausted file descriptors, until
// Heal(). A failed write first writes half of its bytes, as write(2) does when the disk fills
// mid-record, so the log is left torn exactly as a real full disk leaves it.
#ifndef FRESHET_TESTS_STORE_FAULT_INJECTION_FS_H_
#define FRESHET_TESTS_STORE_FAULT_INJECTION_FS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "rocksdb/file_system.h"
#include "rocksdb/io_status.h"

namespace freshet::testing {

class FaultInjectionFileSystem : public rocksdb::FileSystemWrapper {
 public:
  enum Fault : unsigned {
    kWrites = 1,  // Append: ENOSPC after half the bytes
    kSyncs = 2,   // Sync, Fsync, RangeSync: ENOSPC (a delayed-allocation file system at fsync)
    kOpens = 4,   // creating or opening any file: EMFILE
  };

  explicit FaultInjectionFileSystem(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default())
      : rocksdb::FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "freshet.testing.FaultInjectionFileSystem"; }

  void Fail(unsigned faults) { faults_.store(faults); }
  void Heal() { faults_.store(0); }
  // Operations failed so far.
  int64_t injected() const { return injected_.load(); }

  bool Failing(Fault fault) const { return (faults_.load() & fault) != 0; }
  rocksdb::IOStatus Injected(rocksdb::IOStatus s) {
    injected_.fetch_add(1);
    return s;
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("open a file for appending", f));
    return Wrap(f, target()->NewWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("reopen a file for appending", f));
    return Wrap(f, target()->ReopenWritableFile(f, o, r, dbg), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("reuse a file for appending", f));
    return Wrap(f, target()->ReuseWritableFile(f, old, o, r, dbg), r);
  }
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("open a file for random read", f));
    return target()->NewRandomAccessFile(f, o, r, dbg);
  }
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("open a file for sequential read", f));
    return target()->NewSequentialFile(f, o, r, dbg);
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override {
    if (Failing(kOpens)) return Injected(TooManyOpenFiles("open a directory", name));
    return target()->NewDirectory(name, o, r, dbg);
  }

 private:
  // As PosixFileSystem words it (errno text), so the store classifies it as it would EMFILE.
  static rocksdb::IOStatus TooManyOpenFiles(const std::string& what, const std::string& f) {
    return rocksdb::IOStatus::IOError("While " + what + ": " + f, "Too many open files");
  }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(FaultInjectionFileSystem* fs, std::string name, std::unique_ptr<rocksdb::FSWritableFile> f)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(f)), fs_(fs), name_(std::move(name)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kWrites)) return Torn(data, o, dbg);
      return target()->Append(data, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kWrites)) return Torn(data, o, dbg);
      return target()->Append(data, o, v, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kWrites)) return fs_->Injected(NoSpace("appending to file"));
      return target()->PositionedAppend(data, offset, o, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kSyncs)) return fs_->Injected(NoSpace("fdatasync"));
      return target()->Sync(o, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kSyncs)) return fs_->Injected(NoSpace("fsync"));
      return target()->Fsync(o, dbg);
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* dbg) override {
      if (fs_->Failing(kSyncs)) return fs_->Injected(NoSpace("sync_file_range"));
      return target()->RangeSync(offset, nbytes, o, dbg);
    }

   private:
    rocksdb::IOStatus NoSpace(const std::string& what) const {
      return rocksdb::IOStatus::NoSpace("While " + what + ": " + name_, "No space left on device");
    }
    rocksdb::IOStatus Torn(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) {
      target()->Append(rocksdb::Slice(data.data(), data.size() / 2), o, dbg).PermitUncheckedError();
      return fs_->Injected(NoSpace("appending to file"));
    }

    FaultInjectionFileSystem* fs_;
    std::string name_;
  };

  rocksdb::IOStatus Wrap(const std::string& name, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (s.ok()) *r = std::make_unique<File>(this, name, std::move(*r));
    return s;
  }

  std::atomic<unsigned> faults_{0};
  std::atomic<int64_t> injected_{0};
};

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_STORE_FAULT_INJECTION_FS_H_
