// Catalog: what each item is, for people — its title, category and any other fields — by external
// item id. `freshet serve --catalog FILE` loads one at start; `PUT /admin/catalog` changes it; the
// engine stores it with the state (the store's catalog family), so it survives restarts and
// travels with snapshots. Answers include the fields a client asks for (`?fields=title`), and
// recommendation requests may keep to one category (`?category=Drama`).
//
// An item's category field may hold several categories separated by '|' (MovieLens genres:
// "Action|Adventure|Sci-Fi"); InCategory() matches any one of them exactly.
//
// Thread safety: every method may be called from any thread. Reads share a lock (RwLock);
// Put() takes it exclusively for one batch of entries.
#ifndef FRESHET_ENGINE_CATALOG_H_
#define FRESHET_ENGINE_CATALOG_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/json_writer.h"
#include "common/rw_lock.h"

namespace freshet::engine {

// One item's fields, as read from a file or a request. A field with an empty value removes that
// field from the item when merged.
struct CatalogEntry {
  std::string item;
  std::vector<std::pair<std::string, std::string>> fields;  // name, value (UTF-8)
};

// Limits on what a catalog entry may hold (larger ones are refused as malformed).
inline constexpr size_t kMaxCatalogFieldName = 64;
inline constexpr size_t kMaxCatalogFieldValue = 4096;
inline constexpr size_t kMaxCatalogFields = 32;

// A field name: 1 to kMaxCatalogFieldName characters of a-z, 0-9, '_' and '-'.
bool IsCatalogFieldName(absl::string_view name);

// The stored form of an entry's fields (the store's value, and what the catalog keeps in
// memory): for each field in name order, varint name length, name, varint value length, value.
std::string EncodeCatalogFields(std::vector<std::pair<std::string, std::string>> fields);
// False when `encoded` is not such a sequence (a damaged store).
bool DecodeCatalogFields(absl::string_view encoded,
                         std::vector<std::pair<std::string, std::string>>* fields);

class Catalog {
 public:
  // Each entry merged with the item's current fields (given fields replace those of the same
  // name; empty values remove them), as (item, encoded fields) pairs in the entries' order; the
  // catalog itself is unchanged. The engine stores these, then Put()s them.
  std::vector<std::pair<std::string, std::string>> Merge(
      absl::Span<const CatalogEntry> entries) const ABSL_LOCKS_EXCLUDED(mu_);
  // Sets each item's encoded fields (an empty string removes the item).
  void Put(std::vector<std::pair<std::string, std::string>> encoded) ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces the whole catalog (a load from the store, or a restore's).
  void Reset(absl::flat_hash_map<std::string, std::string> encoded) ABSL_LOCKS_EXCLUDED(mu_);

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // The item's encoded fields; empty when it has none.
  std::string Encoded(absl::string_view item) const ABSL_LOCKS_EXCLUDED(mu_);
  // Bytes held: entries, ids and the table (for memory reporting and the 1M-item benchmark).
  size_t MemoryBytes() const ABSL_LOCKS_EXCLUDED(mu_);

  // Appends to `w`, inside an open object, "name": "value" for each of `names` the item has (all
  // of its fields when `names` holds "*"). Returns false when the item has no entry.
  bool WriteFields(absl::string_view item, absl::Span<const std::string> names, JsonWriter& w) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // True when the item's category field lists `category`.
  bool InCategory(absl::string_view item, absl::string_view category) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable RwLock mu_;
  absl::flat_hash_map<std::string, std::string> items_ ABSL_GUARDED_BY(mu_);
};

// --- Reading catalog files.

// jsonl: one object per line, {"item": "50", "title": "...", "category": ["Action", "Drama"]}
//   ("id" also names the item; numbers and booleans become their text, arrays of strings are
//   joined with '|', null is left out).
// csv, tsv: a header line naming the columns, one of them "item" or "id"; csv fields may be quoted
//   (RFC 4180).
// movielens-100k: u.item (id|title|release date|video release date|IMDb URL|19 genre flags),
//   Latin-1; gives title, release_date, imdb_url and category (the genres).
// movielens-1m: movies.dat (id::title::genres), Latin-1; gives title and category.
enum class CatalogFormat { kJsonLines, kCsv, kTsv, kMovieLens100K, kMovieLens1M };

// "jsonl", "csv", "tsv", "movielens-100k", "movielens-1m"; or "" to guess from the file name
// (u.item, movies.dat, *.csv, *.tsv, else jsonl).
absl::StatusOr<CatalogFormat> CatalogFormatFor(absl::string_view name, absl::string_view path);

struct CatalogParseStats {
  int64_t lines = 0;                      // records read (header and blank lines not counted)
  int64_t malformed = 0;                  // records skipped
  std::vector<std::string> first_errors;  // the first few, each naming its line
};

// The entries of `text` in `format`; malformed records are skipped and counted in `stats`. An
// item id must be non-empty and satisfy `valid_id` (the API's id rules, serving::CheckId).
// InvalidArgument when records were read and none was usable.
absl::StatusOr<std::vector<CatalogEntry>> ParseCatalog(
    absl::string_view text, CatalogFormat format,
    const std::function<absl::Status(absl::string_view)>& valid_id, CatalogParseStats* stats);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_CATALOG_H_
