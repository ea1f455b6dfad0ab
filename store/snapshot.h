// Snapshots: RocksDB checkpoints of the live state (taken without pausing learning or serving)
// under D/snapshots/ID/, every file the snapshot's own copy — never a hard link shared with the
// live database, whose damage would then be every snapshot's — each with a manifest, snapshot.json:
//   {"id", "created_ms", "model_version", "events_applied", "users", "items", "algorithm", "dim",
//    "config_fingerprint", "sources": [...], "positions": [{"stream","source","partition",
//    "offset"}], "files": [{"name","size","crc32"}]}
// The manifest is written last (a snapshot without one is partial and never used) and lists every
// file with its size and CRC-32, so a truncated or altered snapshot is refused with DataLoss
// before anything live is touched.
#ifndef FRESHET_STORE_SNAPSHOT_H_
#define FRESHET_STORE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/rocksdb/state_store.h"
#include "store/snapshot_manifest.h"

namespace freshet::store {

// The snapshots of one data directory.
class SnapshotStore {
 public:
  explicit SnapshotStore(std::string data_dir);

  // Checkpoints `live` into a new snapshot and returns its manifest. `id` may be empty (then it is
  // the UTC time and the model version, e.g. 20261124T101500Z-v42).
  absl::StatusOr<SnapshotManifest> Create(StateStore& live, std::string id = "");

  // Every complete snapshot, oldest first. Snapshots whose manifest cannot be read are skipped
  // (Inspect names the problem).
  absl::StatusOr<std::vector<SnapshotManifest>> List() const;

  // The manifest of `id`; with `verify`, also checks every file's size and checksum (DataLoss on
  // any difference, naming the file). NotFound for an unknown id.
  absl::StatusOr<SnapshotManifest> Inspect(const std::string& id, bool verify) const;

  absl::Status Delete(const std::string& id);

  // The directory holding the snapshot's database (to open read-only, e.g. for export).
  std::string DbPath(const std::string& id) const;

  // Replaces the live database of the data directory (which nothing may have open: hold the
  // DataDirLock) with a copy of snapshot `id`, verified before anything live changes: every
  // file's size and CRC-32 against the manifest, then the copy opened read-only, its table
  // blocks' checksums, and its model version, events, algorithm and dimension against the
  // manifest. DataLoss (the live state untouched) when any of that fails; a crash midway is
  // repaired by RecoverDataDir().
  absl::Status RestoreOffline(const std::string& id);

 private:
  std::string data_dir_;
  std::string root_;
};

}  // namespace freshet::store

#endif  // FRESHET_STORE_SNAPSHOT_H_
