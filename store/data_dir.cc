#include "store/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace freshet::store {

namespace fs = std::filesystem;

std::string LiveDbPath(const std::string& data_dir) { return (fs::path(data_dir) / "db").string(); }
std::string SnapshotsPath(const std::string& data_dir) {
  return (fs::path(data_dir) / "snapshots").string();
}

absl::StatusOr<DataDirLock> DataDirLock::Acquire(const std::string& data_dir) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data directory ", data_dir, ": ", ec.message()));
  }
  const std::string path = (fs::path(data_dir) / "freshet.lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    std::string holder =
        n > 0 ? std::string(absl::StripAsciiWhitespace(absl::string_view(buf, n))) : "";
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", data_dir, " is in use by another freshet process",
                     holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"),
                     "; stop it, or address the running server with --server URL"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] ssize_t written = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return DataDirLock(fd);
}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

absl::Status RecoverDataDir(const std::string& data_dir) {
  const fs::path live = LiveDbPath(data_dir);
  const fs::path previous = fs::path(data_dir) / "db.previous";
  const fs::path restoring = fs::path(data_dir) / "db.restoring";
  std::error_code ec;
  if (!fs::exists(live, ec) && fs::exists(previous, ec)) {
    // Crashed between moving the old database aside and moving the restored one in: the restored
    // copy may be incomplete only if it was still being written, which the marker tells.
    if (fs::exists(restoring / "RESTORE_COMPLETE", ec)) {
      fs::rename(restoring, live, ec);
    } else {
      fs::rename(previous, live, ec);
    }
    if (ec) {
      return absl::InternalError(absl::StrCat("recovering ", data_dir,
                                              " after an interrupted "
                                              "restore: ",
                                              ec.message()));
    }
  }
  fs::remove_all(restoring, ec);
  fs::remove_all(previous, ec);
  // Snapshots a crash interrupted before they were published (SnapshotStore::Create).
  for (const auto& entry : fs::directory_iterator(SnapshotsPath(data_dir), ec)) {
    if (entry.path().filename().string().rfind(".partial-", 0) == 0) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
  return absl::OkStatus();
}

}  // namespace freshet::store
