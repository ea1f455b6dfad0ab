#include "engine/catalog.h"

#include <algorithm>
#include <functional>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/byte_codec.h"
#include "common/utf8.h"
#include "simdjson.h"

namespace freshet::engine {

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// Fields of an encoded entry, as views into it; false when it is malformed.
bool ForEachEncoded(absl::string_view encoded,
                    const std::function<void(absl::string_view, absl::string_view)>& visit) {
  ByteReader r(encoded);
  while (!r.done()) {
    absl::string_view name;
    absl::string_view value;
    if (!r.GetStringView(&name) || !r.GetStringView(&value)) return false;
    visit(name, value);
  }
  return true;
}

// Latin-1 (ISO 8859-1) to UTF-8: the MovieLens files' encoding.
std::string Latin1ToUtf8(absl::string_view in) {
  std::string out;
  out.reserve(in.size() + 8);
  for (const char ch : in) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

// u.genre's order: the 19 flags of u.item.
constexpr const char* kMovieLensGenres[] = {
    "unknown",     "Action", "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance",     "Sci-Fi", "Thriller",  "War",       "Western"};

// The fields of one CSV record (RFC 4180: quoted fields may hold separators, "" is a quote);
// false for an unterminated quote. Records do not span lines here.
bool SplitCsv(absl::string_view line, std::vector<std::string>* out) {
  out->clear();
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      out->push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else {
      field.push_back(c);
    }
  }
  if (quoted) return false;
  out->push_back(std::move(field));
  return true;
}

// Checks one parsed entry; the reason it cannot be used, or OK.
absl::Status CheckEntry(const CatalogEntry& entry,
                        const std::function<absl::Status(absl::string_view)>& valid_id) {
  if (entry.item.empty()) return absl::InvalidArgumentError("an empty item id");
  if (const absl::Status id = valid_id(entry.item); !id.ok()) return id;
  if (entry.fields.size() > kMaxCatalogFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxCatalogFields, " fields for item '", entry.item, "'"));
  }
  for (const auto& [name, value] : entry.fields) {
    if (!IsCatalogFieldName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("field name '", name, "': use 1 to ",
                                                     kMaxCatalogFieldName,
                                                     " characters of a-z, 0-9, '_' and '-'"));
    }
    if (value.size() > kMaxCatalogFieldValue) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", name, "' is longer than ", kMaxCatalogFieldValue, " bytes"));
    }
    if (!IsValidUtf8(value)) {
      return absl::InvalidArgumentError(absl::StrCat("field '", name, "' is not valid UTF-8"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CatalogEntry> ParseJsonLine(absl::string_view line, simdjson::dom::parser& parser) {
  const simdjson::padded_string padded(line.data(), line.size());
  simdjson::dom::element doc;
  if (auto error = parser.parse(padded).get(doc); error) {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (doc.get(object)) return absl::InvalidArgumentError("not a JSON object");
  CatalogEntry entry;
  bool has_item = false;
  for (const auto field : object) {
    const std::string name(field.key);
    const simdjson::dom::element value = field.value;
    std::string text;
    switch (value.type()) {
      case simdjson::dom::element_type::STRING: {
        std::string_view view;
        if (value.get(view)) return absl::InvalidArgumentError("unreadable string");
        text = std::string(view);
        break;
      }
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE:
      case simdjson::dom::element_type::BOOL:
        text = simdjson::minify(value);
        break;
      case simdjson::dom::element_type::NULL_VALUE:
        continue;
      case simdjson::dom::element_type::ARRAY: {
        std::vector<std::string> parts;
        simdjson::dom::array array;
        if (value.get(array)) return absl::InvalidArgumentError("unreadable array");
        for (const simdjson::dom::element part : array) {
          std::string_view s;
          if (part.get(s)) {
            return absl::InvalidArgumentError(
                absl::StrCat("field '", name, "': an array may hold only strings"));
          }
          parts.emplace_back(s);
        }
        text = absl::StrJoin(parts, "|");
        break;
      }
      case simdjson::dom::element_type::OBJECT:
        return absl::InvalidArgumentError(absl::StrCat("field '", name, "' is an object"));
    }
    if (name == "item" || name == "id") {
      if (has_item) return absl::InvalidArgumentError("both \"item\" and \"id\"");
      has_item = true;
      entry.item = std::move(text);
    } else {
      entry.fields.emplace_back(name, std::move(text));
    }
  }
  if (!has_item) return absl::InvalidArgumentError("no \"item\" (or \"id\")");
  return entry;
}

}  // namespace

bool IsCatalogFieldName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxCatalogFieldName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
  });
}

std::string EncodeCatalogFields(Fields fields) {
  std::sort(fields.begin(), fields.end());
  std::string out;
  ByteWriter w(&out);
  for (const auto& [name, value] : fields) {
    w.PutString(name);
    w.PutString(value);
  }
  return out;
}

bool DecodeCatalogFields(absl::string_view encoded, Fields* fields) {
  fields->clear();
  return ForEachEncoded(encoded, [&](absl::string_view name, absl::string_view value) {
    fields->emplace_back(std::string(name), std::string(value));
  });
}

std::vector<std::pair<std::string, std::string>> Catalog::Merge(
    absl::Span<const CatalogEntry> entries) const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(entries.size());
  absl::flat_hash_map<std::string, size_t> earlier;  // an item given twice: the later wins
  ReaderLock lock(&mu_);
  for (const CatalogEntry& entry : entries) {
    Fields fields;
    if (auto e = earlier.find(entry.item); e != earlier.end()) {
      DecodeCatalogFields(out[e->second].second, &fields);
    } else if (auto it = items_.find(entry.item); it != items_.end()) {
      DecodeCatalogFields(it->second, &fields);
    }
    for (const auto& [name, value] : entry.fields) {
      auto at = std::find_if(fields.begin(), fields.end(),
                             [&name = name](const auto& f) { return f.first == name; });
      if (at != fields.end()) fields.erase(at);
      if (!value.empty()) fields.emplace_back(name, value);
    }
    std::string encoded = EncodeCatalogFields(std::move(fields));
    if (auto e = earlier.find(entry.item); e != earlier.end()) {
      out[e->second].second = std::move(encoded);
    } else {
      earlier.emplace(entry.item, out.size());
      out.emplace_back(entry.item, std::move(encoded));
    }
  }
  return out;
}

void Catalog::Put(std::vector<std::pair<std::string, std::string>> encoded) {
  WriterLock lock(&mu_);
  for (auto& [item, fields] : encoded) {
    if (fields.empty()) {
      items_.erase(item);
    } else {
      items_[item] = std::move(fields);
    }
  }
}

void Catalog::Reset(absl::flat_hash_map<std::string, std::string> encoded) {
  WriterLock lock(&mu_);
  items_ = std::move(encoded);
}

std::string Catalog::Encoded(absl::string_view item) const {
  ReaderLock lock(&mu_);
  auto it = items_.find(item);
  return it == items_.end() ? std::string() : it->second;
}

size_t Catalog::size() const {
  ReaderLock lock(&mu_);
  return items_.size();
}

size_t Catalog::MemoryBytes() const {
  ReaderLock lock(&mu_);
  size_t bytes = items_.capacity() * (sizeof(std::pair<std::string, std::string>) + 1);
  for (const auto& [item, fields] : items_) {
    // Heap parts of strings past the small-string buffer.
    if (item.capacity() > 15) bytes += item.capacity() + 1;
    if (fields.capacity() > 15) bytes += fields.capacity() + 1;
  }
  return bytes;
}

bool Catalog::WriteFields(absl::string_view item, absl::Span<const std::string> names,
                          JsonWriter& w) const {
  const bool all = std::find(names.begin(), names.end(), "*") != names.end();
  ReaderLock lock(&mu_);
  auto it = items_.find(item);
  if (it == items_.end()) return false;
  ForEachEncoded(it->second, [&](absl::string_view name, absl::string_view value) {
    if (all || std::find(names.begin(), names.end(), name) != names.end()) {
      // "item" and "score" belong to the answer itself.
      if (name != "item" && name != "score") w.Key(name).String(value);
    }
  });
  return true;
}

bool Catalog::InCategory(absl::string_view item, absl::string_view category) const {
  ReaderLock lock(&mu_);
  auto it = items_.find(item);
  if (it == items_.end()) return false;
  bool found = false;
  ForEachEncoded(it->second, [&](absl::string_view name, absl::string_view value) {
    if (name != "category") return;
    for (absl::string_view c : absl::StrSplit(value, '|')) {
      if (c == category) found = true;
    }
  });
  return found;
}

absl::StatusOr<CatalogFormat> CatalogFormatFor(absl::string_view name, absl::string_view path) {
  if (name.empty()) {
    const absl::string_view file = path.substr(path.find_last_of('/') + 1);
    if (file == "u.item") return CatalogFormat::kMovieLens100K;
    if (file == "movies.dat") return CatalogFormat::kMovieLens1M;
    if (absl::EndsWith(file, ".csv")) return CatalogFormat::kCsv;
    if (absl::EndsWith(file, ".tsv")) return CatalogFormat::kTsv;
    return CatalogFormat::kJsonLines;
  }
  if (name == "jsonl") return CatalogFormat::kJsonLines;
  if (name == "csv") return CatalogFormat::kCsv;
  if (name == "tsv") return CatalogFormat::kTsv;
  if (name == "movielens-100k") return CatalogFormat::kMovieLens100K;
  if (name == "movielens-1m") return CatalogFormat::kMovieLens1M;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown catalog format '", name, "': use jsonl, csv, tsv, movielens-100k or movielens-1m"));
}

absl::StatusOr<std::vector<CatalogEntry>> ParseCatalog(
    absl::string_view text, CatalogFormat format,
    const std::function<absl::Status(absl::string_view)>& valid_id, CatalogParseStats* stats) {
  std::vector<CatalogEntry> entries;
  simdjson::dom::parser parser;
  std::vector<std::string> header;
  int id_column = -1;
  std::vector<std::string> cells;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const bool tabular = format == CatalogFormat::kCsv || format == CatalogFormat::kTsv;
    if (tabular && header.empty()) {
      // The header names the columns.
      if (format == CatalogFormat::kCsv) {
        if (!SplitCsv(line, &header)) return absl::InvalidArgumentError("unreadable CSV header");
      } else {
        header = absl::StrSplit(line, '\t');
      }
      for (size_t c = 0; c < header.size(); ++c) {
        header[c] = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header[c]));
        if (id_column < 0 && (header[c] == "item" || header[c] == "id")) {
          id_column = static_cast<int>(c);
        }
      }
      if (id_column < 0) {
        return absl::InvalidArgumentError(
            "the catalog's header line names no \"item\" (or \"id\") column");
      }
      continue;
    }
    ++stats->lines;
    absl::StatusOr<CatalogEntry> entry = absl::InvalidArgumentError("unreadable");
    switch (format) {
      case CatalogFormat::kJsonLines:
        entry = ParseJsonLine(line, parser);
        break;
      case CatalogFormat::kCsv:
      case CatalogFormat::kTsv: {
        bool ok = true;
        if (format == CatalogFormat::kCsv) {
          ok = SplitCsv(line, &cells);
        } else {
          cells = absl::StrSplit(line, '\t');
        }
        if (!ok || cells.size() != header.size()) {
          entry = absl::InvalidArgumentError(absl::StrCat(
              ok ? absl::StrCat(cells.size(), " columns, the header has ", header.size())
                 : "an unterminated quote"));
          break;
        }
        CatalogEntry e;
        for (size_t c = 0; c < cells.size(); ++c) {
          if (static_cast<int>(c) == id_column) {
            e.item = std::move(cells[c]);
          } else if (!header[c].empty()) {
            e.fields.emplace_back(header[c], std::move(cells[c]));
          }
        }
        entry = std::move(e);
        break;
      }
      case CatalogFormat::kMovieLens100K: {
        const std::vector<absl::string_view> parts = absl::StrSplit(line, '|');
        if (parts.size() != 5 + std::size(kMovieLensGenres)) {
          entry = absl::InvalidArgumentError(
              absl::StrCat(parts.size(), " fields, u.item has ", 5 + std::size(kMovieLensGenres)));
          break;
        }
        CatalogEntry e;
        e.item = std::string(parts[0]);
        std::vector<std::string> genres;
        for (size_t g = 0; g < std::size(kMovieLensGenres); ++g) {
          if (parts[5 + g] == "1") genres.emplace_back(kMovieLensGenres[g]);
        }
        e.fields = {{"title", Latin1ToUtf8(parts[1])},
                    {"release_date", Latin1ToUtf8(parts[2])},
                    {"imdb_url", Latin1ToUtf8(parts[4])},
                    {"category", absl::StrJoin(genres, "|")}};
        entry = std::move(e);
        break;
      }
      case CatalogFormat::kMovieLens1M: {
        const std::vector<absl::string_view> parts = absl::StrSplit(line, "::");
        if (parts.size() != 3) {
          entry = absl::InvalidArgumentError(
              absl::StrCat(parts.size(), " fields, movies.dat has 3 (id::title::genres)"));
          break;
        }
        entry =
            CatalogEntry{std::string(parts[0]),
                         {{"title", Latin1ToUtf8(parts[1])}, {"category", Latin1ToUtf8(parts[2])}}};
        break;
      }
    }
    if (entry.ok()) {
      if (const absl::Status checked = CheckEntry(*entry, valid_id); !checked.ok()) {
        entry = checked;
      }
    }
    if (!entry.ok()) {
      ++stats->malformed;
      if (stats->first_errors.size() < 5) {
        stats->first_errors.push_back(
            absl::StrCat("line ", line_number, ": ", entry.status().message()));
      }
      continue;
    }
    entries.push_back(*std::move(entry));
  }
  if (entries.empty() && stats->lines > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no usable catalog entry in ", stats->lines,
        " records; first: ", stats->first_errors.empty() ? "" : stats->first_errors[0]));
  }
  return entries;
}

}  // namespace freshet::engine
