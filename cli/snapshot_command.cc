// `freshet snapshot create|list|inspect|restore|delete|export`, offline on a data directory.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/common_flags.h"
#include "cli/state_commands.h"
#include "cli/stored_state.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "serving/http/http_client.h"
#include "store/data_dir.h"
#include "store/snapshot.h"

namespace freshet::cli {
namespace {

namespace fs = std::filesystem;

void PrintManifest(const store::SnapshotManifest& m, bool json) {
  if (json) {
    std::printf("%s\n", store::ManifestToJson(m).c_str());
    return;
  }
  std::printf(
      "%-32s  version %-8lld  events %-12lld  users %-9lld  items %-8lld  %s d=%d  %.1f MiB\n",
      m.id.c_str(), static_cast<long long>(m.model_version),
      static_cast<long long>(m.events_applied), static_cast<long long>(m.users),
      static_cast<long long>(m.items), m.algorithm.c_str(), m.dim,
      static_cast<double>(m.bytes()) / (1 << 20));
}

// A float32 matrix in NumPy's .npy format (version 1.0), row-major.
absl::Status WriteNpy(const fs::path& path, const std::vector<const float*>& rows, int dim) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path.string()));
  std::string header = absl::StrFormat(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows.size(), dim);
  // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  for (const float* row : rows) out.write(reinterpret_cast<const char*>(row), dim * sizeof(float));
  out.flush();
  if (!out) return absl::UnavailableError(absl::StrCat("error writing ", path.string()));
  return absl::OkStatus();
}

absl::Status WriteTsv(const fs::path& path, const std::vector<std::string>& ids,
                      const std::vector<const float*>& rows, int dim) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path.string()));
  for (size_t r = 0; r < rows.size(); ++r) {
    out << ids[r];
    for (int d = 0; d < dim; ++d) out << '\t' << absl::StrFormat("%.7g", rows[r][d]);
    out << '\n';
  }
  out.flush();
  if (!out) return absl::UnavailableError(absl::StrCat("error writing ", path.string()));
  return absl::OkStatus();
}

absl::Status WriteIds(const fs::path& path, const std::vector<std::string>& ids) {
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& id : ids) out << id << '\n';
  out.flush();
  if (!out) return absl::UnavailableError(absl::StrCat("error writing ", path.string()));
  return absl::OkStatus();
}

absl::Status Export(const SnapshotFlags& flags) {
  if (flags.output.empty()) return absl::InvalidArgumentError("export needs --output DIR");
  if (flags.format != "npy" && flags.format != "tsv") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format must be npy or tsv, not '", flags.format, "'"));
  }
  std::string db = store::LiveDbPath(flags.data_dir);
  if (!flags.id.empty()) {
    store::SnapshotStore snapshots(flags.data_dir);
    FRESHET_RETURN_IF_ERROR(snapshots.Inspect(flags.id, /*verify=*/true).status());
    db = snapshots.DbPath(flags.id);
  }
  FRESHET_ASSIGN_OR_RETURN(StoredState state, OpenStoredState(db, /*load_rows=*/true));
  if (state.learner == nullptr) return absl::NotFoundError("the state is empty: nothing to export");
  const learner::Learner& l = *state.learner;
  const kernels::ItemMatrixView items = l.scoring().ItemVectors();
  if (items.rows == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("algorithm '", state.meta.algorithm, "' has no embedding vectors to export"));
  }
  std::error_code ec;
  fs::create_directories(flags.output, ec);
  if (ec)
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", flags.output, ": ", ec.message()));
  const int dim = items.dim;
  std::vector<std::string> ids;
  std::vector<const float*> rows;
  for (int32_t row = 0; row < l.items().size() && row < items.rows; ++row) {
    ids.push_back(l.items().ExternalId(row));
    rows.push_back(items.vectors + row * items.stride);
  }
  const fs::path out(flags.output);
  if (flags.format == "npy") {
    FRESHET_RETURN_IF_ERROR(WriteNpy(out / "items.npy", rows, dim));
    FRESHET_RETURN_IF_ERROR(WriteIds(out / "items.ids", ids));
    if (items.bias != nullptr) {
      std::vector<const float*> bias;
      for (size_t r = 0; r < rows.size(); ++r) bias.push_back(items.bias + r);
      FRESHET_RETURN_IF_ERROR(WriteNpy(out / "items_bias.npy", bias, 1));
    }
  } else {
    FRESHET_RETURN_IF_ERROR(WriteTsv(out / "items.tsv", ids, rows, dim));
  }
  size_t user_count = 0;
  if (flags.users) {
    ids.clear();
    rows.clear();
    for (int32_t row = 0; row < l.users().size(); ++row) {
      const float* v = l.scoring().UserVector(row);
      if (!l.users().IsLive(row) || v == nullptr) continue;
      ids.push_back(l.users().ExternalId(row));
      rows.push_back(v);
    }
    user_count = rows.size();
    if (flags.format == "npy") {
      FRESHET_RETURN_IF_ERROR(WriteNpy(out / "users.npy", rows, dim));
      FRESHET_RETURN_IF_ERROR(WriteIds(out / "users.ids", ids));
    } else {
      FRESHET_RETURN_IF_ERROR(WriteTsv(out / "users.tsv", ids, rows, dim));
    }
  }
  std::printf("exported %d items%s (d=%d, %s) to %s\n", static_cast<int>(items.rows),
              flags.users ? absl::StrCat(" and ", user_count, " users").c_str() : "", dim,
              flags.format.c_str(), flags.output.c_str());
  return absl::OkStatus();
}

// The same actions against a running server, through its admin API.
absl::Status SnapshotOnServer(const SnapshotFlags& flags) {
  std::string token = flags.token;
  if (token.empty()) {
    if (const char* env = std::getenv("FRESHET_ADMIN_TOKEN")) token = env;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token));
  const std::string& a = flags.action;
  std::string method = "GET", path;
  if (a == "list") {
    path = "/admin/snapshots";
  } else if (a == "create") {
    method = "POST";
    path = "/admin/snapshots" + (flags.id.empty() ? std::string() : "?id=" + flags.id);
  } else if (a == "inspect" || a == "delete" || a == "restore") {
    if (flags.id.empty())
      return absl::InvalidArgumentError(absl::StrCat("snapshot ", a, " needs --id ID"));
    path = "/admin/snapshots/" + flags.id;
    if (a == "delete") method = "DELETE";
    if (a == "restore") {
      method = "POST";
      path += "/restore";
    }
  } else if (a == "export") {
    return absl::InvalidArgumentError(
        "export reads the files of a data directory: use --data-dir (it works beside a running "
        "server)");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown snapshot action '", a,
                     "'; valid: create, list, inspect, restore, delete, export"));
  }
  FRESHET_ASSIGN_OR_RETURN(serving::HttpClientResponse r,
                           serving::HttpRequestOnce(flags.server, method, path, "", headers));
  std::printf("%s\n", r.body.c_str());
  if (r.status >= 200 && r.status < 300) return absl::OkStatus();
  const std::string message = absl::StrCat(flags.server, " answered ", r.status);
  switch (r.status) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 401:
    case 403:
      return absl::PermissionDeniedError(
          absl::StrCat(message, " (give the admin token: --token or FRESHET_ADMIN_TOKEN)"));
    case 404:
      return absl::NotFoundError(message);
    default:
      return absl::UnavailableError(message);
  }
}

absl::Status Snapshot(const SnapshotFlags& flags) {
  if (!flags.server.empty()) {
    if (!flags.data_dir.empty())
      return absl::InvalidArgumentError("give --server or --data-dir, not both");
    return SnapshotOnServer(flags);
  }
  if (flags.data_dir.empty())
    return absl::InvalidArgumentError("--data-dir or --server is required");
  store::SnapshotStore snapshots(flags.data_dir);
  const std::string& action = flags.action;
  const bool needs_id = action == "inspect" || action == "restore" || action == "delete";
  if (needs_id && flags.id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot ", action, " needs --id ID"));
  }
  if (action == "list") {
    FRESHET_ASSIGN_OR_RETURN(std::vector<store::SnapshotManifest> all, snapshots.List());
    if (flags.json) {
      std::string out = "[";
      for (size_t i = 0; i < all.size(); ++i) {
        if (i > 0) out += ',';
        out += store::ManifestToJson(all[i]);
      }
      std::printf("%s]\n", out.c_str());
    } else {
      for (const auto& m : all) PrintManifest(m, false);
      if (all.empty())
        std::printf("no snapshots in %s\n", store::SnapshotsPath(flags.data_dir).c_str());
    }
    return absl::OkStatus();
  }
  if (action == "inspect") {
    FRESHET_ASSIGN_OR_RETURN(store::SnapshotManifest m,
                             snapshots.Inspect(flags.id, /*verify=*/true));
    PrintManifest(m, flags.json);
    return absl::OkStatus();
  }
  if (action == "export") return Export(flags);

  // The rest writes the data directory: no server may be running on it.
  FRESHET_ASSIGN_OR_RETURN(store::DataDirLock lock, store::DataDirLock::Acquire(flags.data_dir));
  FRESHET_RETURN_IF_ERROR(store::RecoverDataDir(flags.data_dir));
  if (action == "create") {
    FRESHET_ASSIGN_OR_RETURN(
        std::unique_ptr<store::StateStore> live,
        store::StateStore::Open(store::LiveDbPath(flags.data_dir),
                                store::StateStore::Options{.create_if_missing = false}));
    FRESHET_ASSIGN_OR_RETURN(store::SnapshotManifest m, snapshots.Create(*live, flags.id));
    PrintManifest(m, flags.json);
    return absl::OkStatus();
  }
  if (action == "restore") {
    FRESHET_RETURN_IF_ERROR(snapshots.RestoreOffline(flags.id));
    std::printf("restored snapshot %s into %s\n", flags.id.c_str(), flags.data_dir.c_str());
    return absl::OkStatus();
  }
  if (action == "delete") {
    FRESHET_RETURN_IF_ERROR(snapshots.Delete(flags.id));
    std::printf("deleted snapshot %s\n", flags.id.c_str());
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown snapshot action '", action,
                   "'; valid: create, list, inspect, restore, delete, export"));
}

}  // namespace

int RunSnapshot(const SnapshotFlags& flags) {
  const absl::Status status = Snapshot(flags);
  if (!status.ok()) {
    PrintError(status);
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace freshet::cli
