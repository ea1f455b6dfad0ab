// DataDir: the layout of a freshet data directory and the lock that keeps two writers out of it.
//   D/db/           the live RocksDB state (StateStore)
//   D/snapshots/ID/ one snapshot: a RocksDB checkpoint plus snapshot.json (see snapshot.h)
//   D/freshet.lock  held (flock) by the process that writes D: `freshet serve`, or an offline
//                   snapshot create/restore/delete
#ifndef FRESHET_STORE_DATA_DIR_H_
#define FRESHET_STORE_DATA_DIR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace freshet::store {

std::string LiveDbPath(const std::string& data_dir);
std::string SnapshotsPath(const std::string& data_dir);

// An exclusive lock on a data directory, released when destroyed (or when the process dies).
class DataDirLock {
 public:
  // Creates `data_dir` if needed and locks it. FailedPrecondition, naming the holder's pid, when
  // another process holds it.
  static absl::StatusOr<DataDirLock> Acquire(const std::string& data_dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Finishes or undoes a restore that a crash interrupted (see SnapshotStore::RestoreOffline): the
// live database is either the old one or the restored one, never a mix. Also removes snapshots a
// crash left unfinished.
absl::Status RecoverDataDir(const std::string& data_dir);

}  // namespace freshet::store

#endif  // FRESHET_STORE_DATA_DIR_H_
