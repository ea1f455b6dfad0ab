#include "store/snapshot_manifest.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json_writer.h"
#include "simdjson.h"

namespace freshet::store {

namespace {

constexpr int64_t kMaxSources = 4096;
constexpr int64_t kMaxDim = 65536;

}  // namespace

bool IsValidSnapshotId(absl::string_view id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

int64_t SnapshotManifest::bytes() const {
  int64_t total = 0;
  for (const SnapshotFile& f : files) total += f.size;
  return total;
}

void WriteManifestSummary(JsonWriter& w, const SnapshotManifest& m) {
  w.Key("id").String(m.id);
  w.Key("created_ms").Int(m.created_ms);
  w.Key("model_version").Int(m.model_version);
  w.Key("events_applied").Int(m.events_applied);
  w.Key("users").Int(m.users);
  w.Key("items").Int(m.items);
  w.Key("algorithm").String(m.algorithm);
  w.Key("dim").Int(m.dim);
}

std::string ManifestToJson(const SnapshotManifest& m) {
  JsonWriter w;
  w.BeginObject();
  WriteManifestSummary(w, m);
  w.Key("config_fingerprint").String(absl::StrFormat("%016x", m.config_fingerprint));
  w.Key("sources").BeginArray();
  for (const std::string& s : m.sources) w.String(s);
  w.EndArray();
  w.Key("positions").BeginArray();
  for (const StoredPosition& p : m.positions) {
    w.BeginObject();
    w.Key("stream").Int(p.stream);
    w.Key("source").String(p.stream >= 0 && static_cast<size_t>(p.stream) < m.sources.size()
                               ? m.sources[p.stream]
                               : "");
    w.Key("partition").Int(p.partition);
    w.Key("offset").Int(p.offset);
    w.EndObject();
  }
  w.EndArray();
  w.Key("bytes").Int(m.bytes());
  w.Key("files").BeginArray();
  for (const SnapshotFile& f : m.files) {
    w.BeginObject();
    w.Key("name").String(f.name);
    w.Key("size").Int(f.size);
    w.Key("crc32").Int(f.crc32);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.str();
}

absl::StatusOr<SnapshotManifest> ParseManifest(absl::string_view text, absl::string_view where) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(where, ": malformed manifest (", what, ")"));
  };
  if (parser.parse(text.data(), text.size()).get(doc) != simdjson::SUCCESS) return bad("not JSON");
  SnapshotManifest m;
  std::string_view s;
  // A non-negative integer field of `object`.
  auto count = [&](simdjson::dom::element object, const char* key, int64_t* out) {
    return object[key].get_int64().get(*out) == simdjson::SUCCESS && *out >= 0;
  };
  if (doc["id"].get_string().get(s) || !IsValidSnapshotId(absl::string_view(s.data(), s.size()))) {
    return bad("id");
  }
  m.id = std::string(s);
  if (!count(doc, "created_ms", &m.created_ms)) return bad("created_ms");
  if (!count(doc, "model_version", &m.model_version)) return bad("model_version");
  if (!count(doc, "events_applied", &m.events_applied)) return bad("events_applied");
  if (!count(doc, "users", &m.users)) return bad("users");
  if (!count(doc, "items", &m.items)) return bad("items");
  if (doc["algorithm"].get_string().get(s) || s.empty() || s.size() > 64) return bad("algorithm");
  m.algorithm = std::string(s);
  int64_t dim = 0;
  if (!count(doc, "dim", &dim) || dim < 1 || dim > kMaxDim) return bad("dim");
  m.dim = static_cast<int>(dim);
  if (doc["config_fingerprint"].get_string().get(s) || s.empty() || s.size() > 16 ||
      !absl::SimpleHexAtoi(absl::string_view(s.data(), s.size()), &m.config_fingerprint)) {
    return bad("config_fingerprint");
  }
  simdjson::dom::array array;
  if (doc["sources"].get_array().get(array) || static_cast<int64_t>(array.size()) > kMaxSources) {
    return bad("sources");
  }
  for (simdjson::dom::element e : array) {
    if (e.get_string().get(s)) return bad("sources");
    m.sources.emplace_back(s);
  }
  if (doc["positions"].get_array().get(array)) return bad("positions");
  for (simdjson::dom::element e : array) {
    StoredPosition p;
    int64_t stream = 0, partition = 0;
    if (!count(e, "stream", &stream) || stream >= kMaxSources ||
        !count(e, "partition", &partition) || partition > std::numeric_limits<int32_t>::max() ||
        e["offset"].get_int64().get(p.offset) || p.offset < -1) {
      return bad("positions");
    }
    p.stream = static_cast<int32_t>(stream);
    p.partition = static_cast<int32_t>(partition);
    m.positions.push_back(p);
  }
  if (doc["files"].get_array().get(array)) return bad("files");
  for (simdjson::dom::element e : array) {
    SnapshotFile f;
    int64_t crc = 0;
    if (e["name"].get_string().get(s) || !count(e, "size", &f.size) || !count(e, "crc32", &crc) ||
        crc > std::numeric_limits<uint32_t>::max()) {
      return bad("files");
    }
    f.name = std::string(s);
    f.crc32 = static_cast<uint32_t>(crc);
    if (f.name.empty() || f.name.find('/') != std::string::npos ||
        f.name.find('\0') != std::string::npos || f.name == "." || f.name == "..") {
      return bad("file name");
    }
    m.files.push_back(std::move(f));
  }
  return m;
}

}  // namespace freshet::store
