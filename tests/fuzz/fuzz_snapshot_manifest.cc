// Fuzz target: the snapshot manifest reader (store/snapshot_manifest.h), which reads snapshot.json
// from disk, where it may be damaged or edited. For arbitrary bytes ParseManifest either refuses
// them with DataLoss or returns a manifest whose every field is in the promised range; and such a
// manifest, written back by ManifestToJson, reads back equal (nothing is truncated or reinterpreted
// on the way in).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "store/snapshot_manifest.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::store {
namespace {

void CheckRanges(const SnapshotManifest& m, absl::string_view input) {
  const auto what = [&] { return absl::StrCat("accepted: \"", absl::CHexEscape(input), "\""); };
  FUZZ_CHECK(IsValidSnapshotId(m.id), what());
  FUZZ_CHECK(m.created_ms >= 0 && m.model_version >= 0 && m.events_applied >= 0, what());
  FUZZ_CHECK(m.users >= 0 && m.items >= 0, what());
  FUZZ_CHECK(m.dim >= 1 && m.dim <= 65536, what());
  FUZZ_CHECK(!m.algorithm.empty(), what());
  FUZZ_CHECK(m.sources.size() <= 4096, what());
  for (const StoredPosition& p : m.positions) {
    FUZZ_CHECK(p.stream >= 0 && p.stream < 4096 && p.partition >= 0 && p.offset >= -1, what());
  }
  for (const SnapshotFile& f : m.files) {
    FUZZ_CHECK(!f.name.empty() && f.name != "." && f.name != "..", what());
    FUZZ_CHECK(f.name.find('/') == std::string::npos, what());
    FUZZ_CHECK(f.name.find('\0') == std::string::npos, what());
    FUZZ_CHECK(f.size >= 0, what());
  }
}

bool Same(const SnapshotManifest& a, const SnapshotManifest& b) {
  if (a.id != b.id || a.created_ms != b.created_ms || a.model_version != b.model_version ||
      a.events_applied != b.events_applied || a.users != b.users || a.items != b.items ||
      a.algorithm != b.algorithm || a.dim != b.dim ||
      a.config_fingerprint != b.config_fingerprint || a.sources != b.sources ||
      a.positions.size() != b.positions.size() || a.files.size() != b.files.size()) {
    return false;
  }
  for (size_t i = 0; i < a.positions.size(); ++i) {
    const StoredPosition& p = a.positions[i];
    const StoredPosition& q = b.positions[i];
    if (p.stream != q.stream || p.partition != q.partition || p.offset != q.offset) return false;
  }
  for (size_t i = 0; i < a.files.size(); ++i) {
    const SnapshotFile& f = a.files[i];
    const SnapshotFile& g = b.files[i];
    if (f.name != g.name || f.size != g.size || f.crc32 != g.crc32) return false;
  }
  return true;
}

}  // namespace
}  // namespace freshet::store

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet::store;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<SnapshotManifest> parsed = ParseManifest(input, "fuzz");
  if (!parsed.ok()) {
    FUZZ_CHECK(absl::IsDataLoss(parsed.status()), parsed.status().ToString());
    return 0;
  }
  CheckRanges(*parsed, input);
  const std::string written = ManifestToJson(*parsed);
  const absl::StatusOr<SnapshotManifest> again = ParseManifest(written, "fuzz (written back)");
  FUZZ_CHECK(again.ok(), absl::StrCat(again.status().ToString(), "\n  written: ", written));
  FUZZ_CHECK(Same(*parsed, *again), absl::StrCat("changed on the way back: ", written));
  return 0;
}
