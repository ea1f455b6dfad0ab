// The manifest of a snapshot, snapshot.json: what the snapshot holds (model version, events, the
// state's identity, the source positions) and every file with its size and CRC-32. Written by
// ManifestToJson, read back by ParseManifest, which treats the text as hostile (a damaged or
// edited file): every field must be present, of its type and in its range, or the manifest is
// refused with DataLoss.
#ifndef FRESHET_STORE_SNAPSHOT_MANIFEST_H_
#define FRESHET_STORE_SNAPSHOT_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "store/stored_position.h"

namespace freshet {
class JsonWriter;  // common/json_writer.h
}  // namespace freshet

namespace freshet::store {

// A snapshot id: 1 to 128 of [A-Za-z0-9._-], not starting with '.'.
bool IsValidSnapshotId(absl::string_view id);

struct SnapshotFile {
  std::string name;
  int64_t size = 0;
  uint32_t crc32 = 0;
};

struct SnapshotManifest {
  std::string id;
  int64_t created_ms = 0;
  int64_t model_version = 0;
  int64_t events_applied = 0;
  int64_t users = 0;
  int64_t items = 0;
  std::string algorithm;
  int dim = 0;
  uint64_t config_fingerprint = 0;
  std::vector<std::string> sources;
  std::vector<StoredPosition> positions;
  std::vector<SnapshotFile> files;
  int64_t bytes() const;
};

std::string ManifestToJson(const SnapshotManifest& manifest);

// The manifest's summary fields (id, created_ms, model_version, events_applied, users, items,
// algorithm, dim) as keys of the JSON object `w` is writing: ManifestToJson starts with them, and
// the admin API lists snapshots by them.
void WriteManifestSummary(JsonWriter& w, const SnapshotManifest& manifest);

// The manifest in `text`; DataLoss naming `where` and the first bad field otherwise. Ranges:
// the id is a valid snapshot id; counts, versions and times are >= 0; dim in [1, 65536]; at most
// 4096 sources; positions with stream in [0, 4096), partition >= 0, offset >= -1; file names
// without '/' (and not "." or ".."), sizes >= 0, CRC-32s below 2^32.
absl::StatusOr<SnapshotManifest> ParseManifest(absl::string_view text, absl::string_view where);

}  // namespace freshet::store

#endif  // FRESHET_STORE_SNAPSHOT_MANIFEST_H_
