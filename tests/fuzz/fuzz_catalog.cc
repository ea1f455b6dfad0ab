// Fuzz target: the item catalog's readers (engine/catalog.h), which read operators' files and
// PUT /admin/catalog bodies. The first byte picks the format, the rest is the file. Whatever
// ParseCatalog accepts must satisfy the entry rules (an id the validator passed, field names and
// values within the limits, UTF-8), merge into a Catalog, encode and decode back to the merged
// fields, and be written by WriteFields as valid UTF-8 JSON that parses back to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/json_writer.h"
#include "common/utf8.h"
#include "engine/catalog.h"
#include "simdjson.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::engine {
namespace {

absl::Status ValidId(absl::string_view id) {
  if (id.empty() || id.size() > 64 || !IsValidUtf8(id)) {
    return absl::InvalidArgumentError("bad id");
  }
  return absl::OkStatus();
}

void Run(absl::string_view data) {
  if (data.empty()) return;
  const CatalogFormat formats[] = {CatalogFormat::kJsonLines, CatalogFormat::kCsv,
                                   CatalogFormat::kTsv, CatalogFormat::kMovieLens100K,
                                   CatalogFormat::kMovieLens1M};
  const CatalogFormat format = formats[static_cast<uint8_t>(data[0]) % 5];
  const absl::string_view text = data.substr(1);
  const auto what = [&] { return absl::StrCat("input: \"", absl::CHexEscape(data), "\""); };
  CatalogParseStats stats;
  absl::StatusOr<std::vector<CatalogEntry>> entries = ParseCatalog(text, format, ValidId, &stats);
  FUZZ_CHECK(stats.malformed >= 0 && stats.malformed <= stats.lines, what());
  if (!entries.ok()) {
    FUZZ_CHECK(entries.status().code() == absl::StatusCode::kInvalidArgument, what());
    return;
  }
  FUZZ_CHECK(static_cast<int64_t>(entries->size()) + stats.malformed == stats.lines, what());
  for (const CatalogEntry& e : *entries) {
    FUZZ_CHECK(ValidId(e.item).ok(), what());
    FUZZ_CHECK(e.fields.size() <= kMaxCatalogFields, what());
    for (const auto& [name, value] : e.fields) {
      FUZZ_CHECK(!name.empty() && name.size() <= kMaxCatalogFieldName, what());
      FUZZ_CHECK(value.size() <= kMaxCatalogFieldValue && IsValidUtf8(value), what());
    }
  }
  Catalog catalog;
  std::vector<std::pair<std::string, std::string>> merged = catalog.Merge(*entries);
  for (const auto& [item, encoded] : merged) {
    std::vector<std::pair<std::string, std::string>> fields;
    FUZZ_CHECK(DecodeCatalogFields(encoded, &fields), what());
    FUZZ_CHECK(EncodeCatalogFields(fields) == encoded, what());
  }
  catalog.Put(merged);
  const std::vector<std::string> all = {"*"};
  simdjson::dom::parser parser;
  for (const auto& [item, encoded] : merged) {
    JsonWriter w;
    w.BeginObject();
    const bool found = catalog.WriteFields(item, all, w);
    w.EndObject();
    FUZZ_CHECK(found == !encoded.empty(), what());
    FUZZ_CHECK(IsValidUtf8(w.str()), what());
    simdjson::dom::element doc;
    FUZZ_CHECK(parser.parse(w.str()).get(doc) == simdjson::SUCCESS, what() + " wrote " + w.str());
    std::vector<std::pair<std::string, std::string>> fields;
    DecodeCatalogFields(encoded, &fields);
    for (const auto& [name, value] : fields) {
      if (name == "item" || name == "score") continue;
      std::string_view got;
      FUZZ_CHECK(doc[name].get(got) == simdjson::SUCCESS && got == value, what());
    }
    catalog.InCategory(item, "Drama");
  }
}

}  // namespace
}  // namespace freshet::engine

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  freshet::engine::Run(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
