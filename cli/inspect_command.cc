// `freshet inspect`: what a data directory (or one of its snapshots) holds, read-only.
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/common_flags.h"
#include "cli/state_commands.h"
#include "cli/stored_state.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "store/data_dir.h"
#include "store/snapshot.h"

namespace freshet::cli {
namespace {

double Norm(const float* v, int dim) {
  if (v == nullptr) return -1;
  double s = 0;
  for (int i = 0; i < dim; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

void WritePositions(JsonWriter& w, const store::StoreMeta& meta) {
  w.Key("positions").BeginObject();
  for (size_t stream = 0; stream < meta.sources.size(); ++stream) {
    w.Key(meta.sources[stream].empty() ? absl::StrCat("stream ", stream) : meta.sources[stream]);
    w.BeginObject();
    for (const store::StoredPosition& p : meta.positions) {
      if (p.stream == static_cast<int32_t>(stream)) w.Key(absl::StrCat(p.partition)).Int(p.offset);
    }
    w.EndObject();
  }
  w.EndObject();
}

absl::Status Inspect(const InspectFlags& flags) {
  if (flags.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  std::string db = store::LiveDbPath(flags.data_dir);
  if (!flags.snapshot.empty()) {
    store::SnapshotStore snapshots(flags.data_dir);
    FRESHET_RETURN_IF_ERROR(snapshots.Inspect(flags.snapshot, /*verify=*/true).status());
    db = snapshots.DbPath(flags.snapshot);
  }
  FRESHET_ASSIGN_OR_RETURN(StoredState state, OpenStoredState(db, /*load_rows=*/true));
  const store::StoreMeta& meta = state.meta;
  JsonWriter w;
  if (state.learner == nullptr) {
    if (!flags.user.empty() || !flags.item.empty()) {
      return absl::NotFoundError(absl::StrCat(flags.data_dir, " holds no state yet"));
    }
    w.BeginObject().Key("events_applied").Int(0).Key("users").Int(0).Key("items").Int(0);
    w.Key("positions").BeginObject().EndObject();
    w.Key("model_version").Int(0).Key("dim").Int(0).Key("algo").String("").EndObject();
  } else if (!flags.user.empty()) {
    const learner::Learner& l = *state.learner;
    const int32_t row = l.users().Find(flags.user);
    if (row < 0)
      return absl::NotFoundError(absl::StrCat("no user '", flags.user, "' in the state"));
    const learner::UserHistory& h = l.history(row);
    std::vector<int32_t> scratch;
    w.BeginObject();
    w.Key("user").String(flags.user);
    w.Key("row").Int(row);
    w.Key("events").Int(h.events());
    w.Key("last_event_ts").Int(h.last_ts_ms());
    w.Key("seen_items").Int(static_cast<int64_t>(h.seen_count()));
    w.Key("vector_norm").Double(Norm(l.scoring().UserVector(row), meta.dim));
    w.Key("recent").BeginArray();
    for (int32_t item : h.Recent(10)) w.String(l.items().ExternalId(item));
    w.EndArray();
    w.EndObject();
  } else if (!flags.item.empty()) {
    const learner::Learner& l = *state.learner;
    const int32_t row = l.items().Find(flags.item);
    if (row < 0)
      return absl::NotFoundError(absl::StrCat("no item '", flags.item, "' in the state"));
    const kernels::ItemMatrixView items = l.scoring().ItemVectors();
    w.BeginObject();
    w.Key("item").String(flags.item);
    w.Key("row").Int(row);
    w.Key("events").Int(l.popularity().Count(row));
    w.Key("last_event_ts").Int(l.popularity().LastTs(row));
    w.Key("popularity").Double(l.popularity().Value(row));
    w.Key("vector_norm")
        .Double(row < items.rows ? Norm(items.vectors + row * items.stride, items.dim) : -1);
    if (items.bias != nullptr && row < items.rows) w.Key("bias").Double(items.bias[row]);
    w.EndObject();
  } else {
    const learner::MemoryUsage memory = state.learner->Memory();
    w.BeginObject();
    w.Key("events_applied").Int(meta.events_applied);
    w.Key("users").Int(meta.users);
    w.Key("items").Int(meta.items);
    WritePositions(w, meta);
    w.Key("model_version").Int(meta.model_version);
    w.Key("dim").Int(meta.dim);
    w.Key("algo").String(meta.algorithm);
    w.Key("events_filtered").Int(state.learner->events_filtered());
    w.Key("users_expired").Int(state.learner->users_expired());
    w.Key("memory").BeginObject();
    w.Key("bytes_per_user").Double(std::round(memory.bytes_per_user()));
    w.Key("bytes_per_item").Double(std::round(memory.bytes_per_item()));
    w.Key("user_bytes").Int(memory.user_bytes);
    w.Key("item_bytes").Int(memory.item_bytes);
    w.EndObject();
    w.Key("disk_bytes").Int(state.disk_bytes);
    w.Key("config_fingerprint").String(absl::StrFormat("%016x", meta.fingerprint));
    w.EndObject();
  }
  if (flags.json) {
    std::printf("%s\n", w.str().c_str());
    return absl::OkStatus();
  }
  // Human-readable: the same JSON, one member per line.
  std::string text = w.str();
  std::string out;
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size())
        out += text[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '}' || c == ']') {
      --depth;
      out += '\n' + std::string(static_cast<size_t>(2 * depth), ' ');
    }
    out += c;
    if (c == ':') out += ' ';
    if (c == '{' || c == '[' || c == ',') {
      if (c != ',') ++depth;
      out += '\n' + std::string(static_cast<size_t>(2 * depth), ' ');
    }
  }
  std::printf("%s\n", out.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunInspect(const InspectFlags& flags) {
  const absl::Status status = Inspect(flags);
  if (!status.ok()) {
    PrintError(status);
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace freshet::cli
