#include "store/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "store/data_dir.h"

namespace freshet::store {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifestName = "snapshot.json";

// Copies `from` to `to` (created; it must not exist) and syncs the copy. Returns the CRC-32 of the
// bytes copied, and their count in *size.
absl::StatusOr<uint32_t> CopyWithCrc32(const fs::path& from, const fs::path& to, int64_t* size) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", from.string(), ": ", std::strerror(errno)));
  }
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    const int error = errno;
    ::close(in);
    return absl::UnavailableError(
        absl::StrCat("cannot create ", to.string(), ": ", std::strerror(error)));
  }
  std::vector<char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  *size = 0;
  absl::Status status;
  while (status.ok()) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::DataLossError(
          absl::StrCat("error reading ", from.string(), ": ", std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    *size += n;
    for (ssize_t done = 0; done < n && status.ok();) {
      const ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = absl::UnavailableError(
            absl::StrCat("error writing ", to.string(), ": ", std::strerror(errno)));
      } else {
        done += w;
      }
    }
  }
  if (status.ok() && ::fsync(out) != 0) {
    status = absl::UnavailableError(
        absl::StrCat("error syncing ", to.string(), ": ", std::strerror(errno)));
  }
  ::close(in);
  if (::close(out) != 0 && status.ok()) {
    status = absl::UnavailableError(
        absl::StrCat("error closing ", to.string(), ": ", std::strerror(errno)));
  }
  if (!status.ok()) {
    std::error_code ec;
    fs::remove(to, ec);
    return status;
  }
  return static_cast<uint32_t>(crc);
}

// Links shared with another path (the live database, other snapshots) on the same inode.
bool SharesItsInode(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_nlink > 1;
}

absl::StatusOr<uint32_t> FileCrc32(const fs::path& path, int64_t* size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::vector<char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  *size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    *size += n;
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path.string()));
  return static_cast<uint32_t>(crc);
}

absl::Status WriteFileAtomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

SnapshotStore::SnapshotStore(std::string data_dir)
    : data_dir_(std::move(data_dir)), root_(SnapshotsPath(data_dir_)) {}

std::string SnapshotStore::DbPath(const std::string& id) const {
  return (fs::path(root_) / id).string();
}

absl::StatusOr<SnapshotManifest> SnapshotStore::Create(StateStore& live, std::string id) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", root_, ": ", ec.message()));
  const std::string tmp_id = absl::StrCat(".partial-", absl::ToUnixNanos(absl::Now()));
  const fs::path tmp = fs::path(root_) / tmp_id;
  FRESHET_RETURN_IF_ERROR(live.Checkpoint(tmp.string()));
  auto cleanup = [&] { fs::remove_all(tmp, ec); };

  SnapshotManifest m;
  {
    // The manifest describes the checkpoint itself, not the live state, which has moved on.
    StateStore::Options ro;
    ro.read_only = true;
    auto copy = StateStore::Open(tmp.string(), ro);
    if (!copy.ok()) {
      cleanup();
      return copy.status();
    }
    auto meta = (*copy)->ReadMeta();
    if (!meta.ok()) {
      cleanup();
      return meta.status();
    }
    m.model_version = meta->model_version;
    m.events_applied = meta->events_applied;
    m.users = meta->users;
    m.items = meta->items;
    m.algorithm = meta->algorithm;
    m.dim = meta->dim;
    m.config_fingerprint = meta->fingerprint;
    m.sources = meta->sources;
    m.positions = meta->positions;
  }
  m.created_ms = absl::ToUnixMillis(absl::Now());
  if (id.empty()) {
    id = absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()), "-v",
                      m.model_version);
    for (int n = 2; fs::exists(fs::path(root_) / id, ec); ++n) {
      id = absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()), "-v",
                        m.model_version, "-", n);
    }
  }
  if (!IsValidSnapshotId(id)) {
    cleanup();
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot id '", id,
                     "' must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'"));
  }
  if (fs::exists(fs::path(root_) / id, ec)) {
    cleanup();
    return absl::AlreadyExistsError(absl::StrCat("snapshot ", id, " already exists"));
  }
  m.id = id;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(tmp, ec)) {
    if (entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& path : files) {
    SnapshotFile f;
    f.name = path.filename().string();
    absl::StatusOr<uint32_t> crc;
    if (SharesItsInode(path)) {
      // The checkpoint hard-linked this table file to the live database's: one inode, so damage
      // to the live file (a bad sector, a stray write) would be damage to every snapshot too, and
      // the CRC in the manifest would only tell that every copy is gone. A snapshot owns its
      // bytes: the link is replaced by a copy (checksummed while copying).
      const fs::path copy = path.string() + ".copy";
      crc = CopyWithCrc32(path, copy, &f.size);
      if (crc.ok()) {
        fs::rename(copy, path, ec);
        if (ec) {
          crc = absl::UnavailableError(
              absl::StrCat("cannot replace ", path.string(), ": ", ec.message()));
        }
      }
    } else {
      crc = FileCrc32(path, &f.size);
    }
    if (!crc.ok()) {
      cleanup();
      return crc.status();
    }
    f.crc32 = *crc;
    m.files.push_back(std::move(f));
  }
  absl::Status written = WriteFileAtomically(tmp / kManifestName, ManifestToJson(m));
  if (written.ok()) {
    fs::rename(tmp, fs::path(root_) / id, ec);
    if (ec)
      written =
          absl::UnavailableError(absl::StrCat("cannot publish snapshot ", id, ": ", ec.message()));
  }
  if (!written.ok()) {
    cleanup();
    return written;
  }
  return m;
}

absl::StatusOr<std::vector<SnapshotManifest>> SnapshotStore::List() const {
  std::vector<SnapshotManifest> out;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string id = entry.path().filename().string();
    if (!entry.is_directory(ec) || id.empty() || id[0] == '.') continue;
    auto m = Inspect(id, /*verify=*/false);
    if (m.ok()) out.push_back(*std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const SnapshotManifest& a, const SnapshotManifest& b) {
    return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
  });
  return out;
}

absl::StatusOr<SnapshotManifest> SnapshotStore::Inspect(const std::string& id, bool verify) const {
  if (!IsValidSnapshotId(id)) {
    return absl::InvalidArgumentError(absl::StrCat("bad snapshot id '", id, "'"));
  }
  const fs::path dir = fs::path(root_) / id;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no snapshot '", id, "' in ", root_));
  }
  std::ifstream in(dir / kManifestName, std::ios::binary);
  if (!in) {
    return absl::DataLossError(absl::StrCat("snapshot ", id, " has no manifest (", kManifestName,
                                            "): it is partial or damaged"));
  }
  std::stringstream text;
  text << in.rdbuf();
  FRESHET_ASSIGN_OR_RETURN(SnapshotManifest m,
                           ParseManifest(text.str(), absl::StrCat("snapshot ", id)));
  if (m.id != id) {
    return absl::DataLossError(absl::StrCat("snapshot ", id, ": manifest names '", m.id, "'"));
  }
  if (!verify) return m;
  for (const SnapshotFile& f : m.files) {
    int64_t size = 0;
    auto crc = FileCrc32(dir / f.name, &size);
    if (!crc.ok()) {
      return absl::DataLossError(absl::StrCat("snapshot ", id, ": file ", f.name, " is missing"));
    }
    if (size != f.size) {
      return absl::DataLossError(absl::StrCat("snapshot ", id, ": file ", f.name, " has ", size,
                                              " bytes, the manifest says ", f.size,
                                              " (truncated or altered)"));
    }
    if (*crc != f.crc32) {
      return absl::DataLossError(
          absl::StrCat("snapshot ", id, ": file ", f.name, " fails its checksum (corrupt)"));
    }
  }
  return m;
}

absl::Status SnapshotStore::Delete(const std::string& id) {
  if (!IsValidSnapshotId(id)) {
    return absl::InvalidArgumentError(absl::StrCat("bad snapshot id '", id, "'"));
  }
  const fs::path dir = fs::path(root_) / id;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no snapshot '", id, "' in ", root_));
  }
  fs::remove_all(dir, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot delete ", dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status SnapshotStore::RestoreOffline(const std::string& id) {
  // The manifest is read (not yet the files: they are checksummed while copied, below).
  FRESHET_ASSIGN_OR_RETURN(SnapshotManifest m, Inspect(id, /*verify=*/false));
  const fs::path source = fs::path(root_) / id;
  const fs::path live = LiveDbPath(data_dir_);
  const fs::path restoring = fs::path(data_dir_) / "db.restoring";
  const fs::path previous = fs::path(data_dir_) / "db.previous";
  std::error_code ec;
  fs::remove_all(restoring, ec);
  fs::create_directories(restoring, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot create ", restoring.string(), ": ", ec.message()));
  auto refuse = [&](const absl::Status& why) {
    std::error_code ignored;
    fs::remove_all(restoring, ignored);
    return absl::Status(why.code(), absl::StrCat(why.message(), "; the live state in ", data_dir_,
                                                 " is untouched"));
  };
  // 1. Copy every file, checksummed on the way: the restored database shares no inode with the
  // snapshot (a later corruption of the live files cannot reach the snapshot), and what was
  // copied is what the manifest describes.
  for (const SnapshotFile& f : m.files) {
    int64_t size = 0;
    const absl::StatusOr<uint32_t> crc = CopyWithCrc32(source / f.name, restoring / f.name, &size);
    if (absl::IsNotFound(crc.status())) {
      return refuse(
          absl::DataLossError(absl::StrCat("snapshot ", id, ": file ", f.name, " is missing")));
    }
    if (!crc.ok()) {
      return refuse(absl::Status(
          crc.status().code(),
          absl::StrCat("copying ", f.name, " of snapshot ", id, ": ", crc.status().message())));
    }
    if (size != f.size) {
      return refuse(absl::DataLossError(absl::StrCat("snapshot ", id, ": file ", f.name, " has ",
                                                     size, " bytes, the manifest says ", f.size,
                                                     " (truncated or altered)")));
    }
    if (*crc != f.crc32) {
      return refuse(absl::DataLossError(
          absl::StrCat("snapshot ", id, ": file ", f.name, " fails its checksum (corrupt)")));
    }
  }
  // 2. The copy must open and hold what the manifest says, and every table block must pass its
  // checksum: a manifest that agrees with damaged files (one missing from both, say) is caught
  // here, before anything live is replaced.
  {
    StateStore::Options ro;
    ro.read_only = true;
    ro.create_if_missing = false;
    absl::StatusOr<std::unique_ptr<StateStore>> copy = StateStore::Open(restoring.string(), ro);
    absl::Status checked = copy.status();
    if (checked.ok()) checked = (*copy)->VerifyChecksums();
    if (checked.ok()) {
      absl::StatusOr<StoreMeta> meta = (*copy)->ReadMeta();
      checked = meta.status();
      if (checked.ok() &&
          (meta->model_version != m.model_version || meta->events_applied != m.events_applied ||
           meta->algorithm != m.algorithm || meta->dim != m.dim)) {
        checked = absl::DataLossError(absl::StrCat(
            "it holds model version ", meta->model_version, " with ", meta->events_applied,
            " events (", meta->algorithm, ", d=", meta->dim, "), the manifest says ",
            m.model_version, " with ", m.events_applied, " (", m.algorithm, ", d=", m.dim, ")"));
      }
    }
    if (!checked.ok()) {
      return refuse(absl::DataLossError(absl::StrCat(
          "snapshot ", id, " cannot be restored: a copy of it does not open as a freshet state (",
          checked.message(), "); the snapshot is damaged — restore another one")));
    }
  }
  { std::ofstream marker(restoring / "RESTORE_COMPLETE"); }
  // 3. Swap: the old database aside, the restored one in, the old one removed. RecoverDataDir()
  // completes or undoes this after a crash at any point.
  if (fs::exists(live, ec)) {
    fs::rename(live, previous, ec);
    if (ec)
      return refuse(
          absl::UnavailableError(absl::StrCat("moving the live database aside: ", ec.message())));
  }
  fs::rename(restoring, live, ec);
  if (ec) {
    std::error_code undo;
    fs::rename(previous, live, undo);
    return refuse(
        absl::UnavailableError(absl::StrCat("moving the restored database in: ", ec.message())));
  }
  fs::remove(live / "RESTORE_COMPLETE", ec);
  fs::remove_all(previous, ec);
  return absl::OkStatus();
}

}  // namespace freshet::store
