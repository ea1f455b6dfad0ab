// FileSourceOptions: how FileEventSource decodes a log file, and the parsers that build those
// options from command-line strings (`--format`, `--columns`, `--delimiter`, `--ts-unit`).
//
// Formats (names as ParseFileFormat accepts them):
//   movielens-100k  MovieLens 100K `u.data`: `user \t item \t rating \t ts_seconds`, no header.
//   movielens       MovieLens 1M/10M `ratings.dat`: `user::item::rating::ts_seconds`.
//   csv             delimited text; `delimiter` (default ",") and `columns` say how to read it.
//   tsv             csv with a tab delimiter (`delimiter` is ignored).
//   jsonl           one JSON object per line, the Kafka payload (ARCHITECTURE.md, "Event format"):
//                   {"user":"u42","item":"sku-9","type":"click","ts":1700000000123,"weight":1.0}
//                   `user`/`item` are strings or integers (integers keep their decimal text),
//                   `type` (string), `ts` and `weight` (numbers, or strings holding a number) are
//                   optional; null and "" count as absent; other keys are ignored. The rules are
//                   EventCodec's (stream/event_codec.h), the same for Kafka and HTTP.
// The MovieLens presets fix their own delimiter and columns (`delimiter`, `columns` and `header`
// are ignored), give every event the type "rating" and ignore the rating value: every rating is
// one interaction.
//
// Delimited formats: RFC-4180-style quoting within one line ("a ""b""" is `a "b"`; a quoted field
// cannot span lines); unquoted fields are trimmed of surrounding spaces and tabs (those that are
// not part of the delimiter); columns beyond the mapping are ignored, fewer columns than the
// mapping is malformed.
//
// Every format: lines end in '\n' or "\r\n"; a UTF-8 byte-order mark at the start is skipped;
// empty and whitespace-only lines are ignored.
//
// Timestamps: `ts_unit` auto reads a value below 1e11 (in magnitude) as seconds and anything else
// as milliseconds (1e11 s is the year 5138; 1e11 ms is 1973). Fractional values are allowed in
// every unit and rounded to the nearest millisecond. An absent or empty timestamp repeats the
// previous event's timestamp in input order (0 before the first), so the event keeps its place.
//
// Weights: an explicit weight (finite, >= 0) wins; otherwise `type_weights[type]`, where an
// absent type has first become `default_type`; a type that is empty or not in the map gets
// `default_weight`.
#ifndef FRESHET_STREAM_FILE_SOURCE_OPTIONS_H_
#define FRESHET_STREAM_FILE_SOURCE_OPTIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "stream/event_validation.h"

namespace freshet::stream {

enum class FileFormat { kMovieLens100k, kMovieLens, kCsv, kTsv, kJsonl };

// What one delimited column holds. Names (ParseColumns): user, item, ts, type, weight, _ (skip).
enum class ColumnRole { kUser, kItem, kTimestamp, kType, kWeight, kSkip };

// Names (ParseTimestampUnit): auto, s, ms.
enum class TimestampUnit { kAuto, kSeconds, kMilliseconds };

// Plain values; copyable.
struct FileSourceOptions {
  FileFormat format = FileFormat::kCsv;

  // csv only: the field separator, any non-empty string without '"', '\r' or '\n' ("::", "\t").
  std::string delimiter = ",";

  // csv and tsv: the role of each column in order. `user` and `item` exactly once, `ts`, `type`
  // and `weight` at most once, `_` any number of times. Required (no default) for csv and tsv.
  std::vector<ColumnRole> columns;

  // csv and tsv: the first non-empty line is a header and is skipped.
  bool header = false;

  // Unset: milliseconds for jsonl (ARCHITECTURE.md, "Event format": `ts` is epoch ms), auto for
  // the other formats.
  std::optional<TimestampUnit> ts_unit;

  // Type given to events whose input has no type (no type column, absent or empty). The
  // MovieLens presets use "rating" when this is empty.
  std::string default_type;

  // Weight of each event type, and of events whose type is empty or not in the map.
  absl::flat_hash_map<std::string, float> type_weights;
  float default_weight = 1.0f;
  // What every event must satisfy (stream/event_validation.h); others are malformed.
  EventLimits limits;

  // Replay in timestamp order, ties kept in input order. False: replay in input order.
  bool sort_by_time = true;

  // Options for `format_name` with that format's defaults filled in (delimiter, and for the
  // presets their columns and type). InvalidArgument (listing the valid names) for an unknown
  // format.
  static absl::StatusOr<FileSourceOptions> ForFormat(absl::string_view format_name);
};

// "movielens-100k" | "movielens" | "csv" | "tsv" | "jsonl" (case-insensitive). InvalidArgument
// listing the valid names otherwise.
absl::StatusOr<FileFormat> ParseFileFormat(absl::string_view name);
absl::string_view FileFormatName(FileFormat format);

// Comma-separated roles, e.g. "user,item,_,type,ts" (spaces around names allowed). Also checks
// the mapping with ValidateColumns. InvalidArgument naming the bad role otherwise.
absl::StatusOr<std::vector<ColumnRole>> ParseColumns(absl::string_view spec);
absl::string_view ColumnRoleName(ColumnRole role);
// OK when `user` and `item` appear exactly once and `ts`, `type`, `weight` at most once;
// InvalidArgument naming the missing or repeated role otherwise.
absl::Status ValidateColumns(const std::vector<ColumnRole>& columns);

// "auto" | "s" | "ms" (also "seconds", "milliseconds"). InvalidArgument otherwise.
absl::StatusOr<TimestampUnit> ParseTimestampUnit(absl::string_view name);
absl::string_view TimestampUnitName(TimestampUnit unit);

// A delimiter as typed on a command line: C escapes are decoded ("\\t" is a tab), and "tab",
// "comma", "semicolon", "pipe" and "space" are accepted by name. InvalidArgument if it is empty or
// contains '"', '\r' or '\n'.
absl::StatusOr<std::string> ParseDelimiter(absl::string_view text);

// "view=1,click=2,purchase=8" -> map. InvalidArgument for a missing '=', an empty type, a
// repeated type, or a weight that is not a finite number >= 0.
absl::StatusOr<absl::flat_hash_map<std::string, float>> ParseTypeWeights(absl::string_view spec);

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_FILE_SOURCE_OPTIONS_H_
