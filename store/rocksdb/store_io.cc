#include "store/rocksdb/store_io.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace freshet::store {

namespace fs = std::filesystem;

namespace {

constexpr size_t kWarningsKept = 64;

const char* LevelName(rocksdb::InfoLogLevel level) {
  switch (level) {
    case rocksdb::InfoLogLevel::DEBUG_LEVEL:
      return "[DEBUG] ";
    case rocksdb::InfoLogLevel::WARN_LEVEL:
      return "[WARN] ";
    case rocksdb::InfoLogLevel::ERROR_LEVEL:
      return "[ERROR] ";
    case rocksdb::InfoLogLevel::FATAL_LEVEL:
      return "[FATAL] ";
    default:
      return "";  // INFO and HEADER lines carry no level, as in RocksDB's own LOG
  }
}

}  // namespace

// --- StoreLogger ------------------------------------------------------------------------------

StoreLogger::StoreLogger(const std::string& dir, int keep_old) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path log = fs::path(dir) / "LOG";
  if (fs::exists(log, ec)) {
    timeval now{};
    gettimeofday(&now, nullptr);
    const int64_t micros = int64_t{now.tv_sec} * 1000000 + now.tv_usec;
    fs::rename(log, fs::path(dir) / absl::StrCat("LOG.old.", micros), ec);
  }
  std::vector<fs::path> old;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (absl::StartsWith(entry.path().filename().string(), "LOG.old.")) old.push_back(entry.path());
  }
  std::sort(old.begin(), old.end());  // same-length micros: oldest first
  for (size_t i = 0; i + static_cast<size_t>(std::max(0, keep_old)) < old.size(); ++i) {
    fs::remove(old[i], ec);
  }
  fd_ = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

StoreLogger::~StoreLogger() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreLogger::Logv(const char* format, va_list ap) {
  Write(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
}

void StoreLogger::Logv(rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel()) return;
  Write(level, format, ap);
}

void StoreLogger::LogHeader(const char* format, va_list ap) {
  Write(rocksdb::InfoLogLevel::HEADER_LEVEL, format, ap);
}

void StoreLogger::Write(rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  char stack[1024];
  std::string heap;
  va_list copy;
  va_copy(copy, ap);
  const int n = std::vsnprintf(stack, sizeof(stack), format, copy);
  va_end(copy);
  if (n < 0) return;
  const char* text = stack;
  if (static_cast<size_t>(n) >= sizeof(stack)) {
    heap.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(heap.data(), heap.size(), format, ap);
    heap.resize(static_cast<size_t>(n));
    text = heap.c_str();
  }
  const absl::string_view message(text, static_cast<size_t>(n));
  if (level >= rocksdb::InfoLogLevel::WARN_LEVEL && level != rocksdb::InfoLogLevel::HEADER_LEVEL) {
    MutexLock lock(&mu_);
    if (warnings_.size() == kWarningsKept) warnings_.erase(warnings_.begin());
    warnings_.emplace_back(message);
  }
  if (fd_ < 0) return;
  timeval now{};
  gettimeofday(&now, nullptr);
  tm t{};
  const time_t seconds = now.tv_sec;
  localtime_r(&seconds, &t);
  char prefix[64];
  std::snprintf(prefix, sizeof(prefix), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<long>(now.tv_usec));
  std::string line = absl::StrCat(prefix, LevelName(level), message);
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  // One write per line (O_APPEND keeps concurrent lines whole). A failure — the disk is full —
  // loses this line and nothing else: the next line is simply tried again.
  [[maybe_unused]] const ssize_t written = ::write(fd_, line.data(), line.size());
}

std::vector<std::string> StoreLogger::Warnings() const {
  MutexLock lock(&mu_);
  return warnings_;
}

// --- StoreListener ----------------------------------------------------------------------------

void StoreListener::OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) {
  MutexLock lock(&mu_);
  error_ = error->ToString();
}

void StoreListener::OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status error,
                                         bool* auto_recovery) {
  error.PermitUncheckedError();
  // StateStore::Write() resumes the database itself (DB::Resume()); see store_io.h for why
  // RocksDB's own recovery from a full disk cannot be left on.
  *auto_recovery = false;
}

void StoreListener::OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) {
  if (info.new_bg_error.ok()) Clear();
}

std::string StoreListener::error() const {
  MutexLock lock(&mu_);
  return error_;
}

void StoreListener::Clear() {
  MutexLock lock(&mu_);
  error_.clear();
}

// --- TransientErrorFileSystem -----------------------------------------------------------------

namespace {

class TransientErrorFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit TransientErrorFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : rocksdb::FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "freshet.TransientErrorFileSystem"; }

  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    return Mark(target()->NewSequentialFile(f, o, r, dbg));
  }
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override {
    return Mark(target()->NewRandomAccessFile(f, o, r, dbg));
  }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    return Mark(target()->NewWritableFile(f, o, r, dbg));
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    return Mark(target()->ReopenWritableFile(f, o, r, dbg));
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    return Mark(target()->ReuseWritableFile(f, old, o, r, dbg));
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    return Mark(target()->NewRandomRWFile(f, o, r, dbg));
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override {
    return Mark(target()->NewDirectory(name, o, r, dbg));
  }

 private:
  // The POSIX file system reports errno only as text (strerror): EMFILE is "Too many open
  // files", ENFILE "Too many open files in system".
  static rocksdb::IOStatus Mark(rocksdb::IOStatus s) {
    if (!s.ok() && absl::StrContains(s.ToString(), "Too many open files")) s.SetRetryable(true);
    return s;
  }
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> NewTransientErrorFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base) {
  return std::make_shared<TransientErrorFileSystem>(std::move(base));
}

}  // namespace freshet::store
