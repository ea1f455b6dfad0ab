// FileEventSource: replays an event log file (MovieLens, csv/tsv, jsonl; plain or gzip).
//
// Open() reads and decodes the whole file up front, because replay order is timestamp order and
// logs are often not sorted (MovieLens u.data is not). Events are held compactly (ids interned in
// a string pool, ~24 bytes per event plus each distinct id once), and Poll() materialises Event
// objects from them. The formats are in stream/file_source_options.h; jsonl lines are decoded, and
// the lines of every format checked, by EventCodec (stream/event_codec.h).
//
// Replay order: by timestamp, ties in input order (a stable sort), unless
// `FileSourceOptions::sort_by_time` is false. Event::position is {stream 0, partition 0, offset =
// index in replay order}, so SeekAfter(position.offset) resumes right after an event.
//
// Malformed lines never stop the replay: each is counted under its reason, logged as
// "FILE:LINE: reason" (rate-limited to 10 per second, then a count of the suppressed ones) and
// skipped. Reasons (the keys of malformed_by_reason()):
//   "too few columns", "unterminated quote", "bad quoting", "empty user", "empty item",
//   "bad ts", "bad weight" (negative, NaN, infinite or not a number), and for jsonl also
//   "invalid json", "missing user", "missing item", "bad user", "bad item" (not a string or an
//   integer), "bad type" (not a string);
//   "truncated last line": the last line has no newline and does not parse, or the file is a
//   truncated gzip stream (whose last partial line is dropped even if it happens to parse);
//   "truncated gzip": the gzip stream ends early; what decoded is kept, a warning is logged, and
//   it counts as one malformed record.
// Empty and whitespace-only lines are ignored without being counted.
//
// Not thread-safe: one consumer thread polls a source (EventSource).
#ifndef FRESHET_STREAM_FILE_EVENT_SOURCE_H_
#define FRESHET_STREAM_FILE_EVENT_SOURCE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stream/event.h"
#include "stream/event_source.h"
#include "stream/file_source_options.h"
#include "stream/internal/line_parser.h"
#include "stream/internal/string_pool.h"

namespace freshet::stream {

class FileEventSource final : public EventSource {
 public:
  // Reads and decodes `path`. Gzip is detected by its magic bytes, whatever the file name.
  // Errors (each message names the file or the bad option):
  //   InvalidArgument: bad options (unknown column role, user/item missing from or repeated in
  //     the column mapping, empty csv mapping, bad delimiter, negative or non-finite weights), or
  //     `path` is a directory;
  //   NotFound, PermissionDenied: the file cannot be opened;
  //   DataLoss: a corrupt gzip stream (bad header, bad block or checksum);
  //   Internal: other I/O errors.
  // A file without a single valid event is not an error (size() is 0).
  static absl::StatusOr<std::unique_ptr<FileEventSource>> Open(const std::string& path,
                                                               const FileSourceOptions& options);

  FileEventSource(const FileEventSource&) = delete;
  FileEventSource& operator=(const FileEventSource&) = delete;

  // Appends up to `max_events` events in replay order. Never waits (`timeout` is ignored: the
  // data is in memory) and never fails.
  absl::Status Poll(size_t max_events, absl::Duration timeout, std::vector<Event>* out) override;
  bool Finished() const override { return next_ >= static_cast<int64_t>(events_.size()); }
  std::string Name() const override { return "file:" + path_; }
  // records_read: non-empty lines after the header; events: size(); malformed: lines skipped
  // (plus one for a truncated gzip stream). Fixed once Open() returns.
  SourceStats stats() const override { return stats_; }

  // Events decoded from the file.
  int64_t size() const { return static_cast<int64_t>(events_.size()); }
  // Offset of the event the next Poll returns first (== size() when finished).
  int64_t next_offset() const { return next_; }
  // Starts the replay again from the first event.
  void Rewind() { next_ = 0; }
  // The next Poll starts at `offset` + 1; -1 means from the start. OutOfRange unless
  // -1 <= offset < size().
  absl::Status SeekAfter(int64_t offset);
  absl::Status SeekToApplied(const AppliedFn& applied) override { return SeekAfter(applied(0, 0)); }
  // Continues after the stored position; FailedPrecondition when the file holds fewer events
  // than that (another file under the same name).
  absl::Status Resume(AppliedFn applied) override;

  // Malformed record counts by reason (see the file comment); reasons that never occurred are
  // absent. The values sum to stats().malformed.
  absl::flat_hash_map<std::string, int64_t> malformed_by_reason() const;

  // Distinct user ids, item ids and event types among the decoded events (the empty type
  // counts as one type).
  int64_t distinct_users() const { return static_cast<int64_t>(users_.size()); }
  int64_t distinct_items() const { return static_cast<int64_t>(items_.size()); }
  int64_t distinct_types() const { return static_cast<int64_t>(types_.size()); }

  const std::string& path() const { return path_; }

 private:
  // One decoded event; ids index the pools.
  struct CompactEvent {
    int64_t ts_ms;
    float weight;
    uint32_t user;
    uint32_t item;
    uint32_t type;
  };

  explicit FileEventSource(std::string path) : path_(std::move(path)) {}

  class Loader;

  std::string path_;
  internal::StringPool users_;
  internal::StringPool items_;
  internal::StringPool types_;        // id 0 is the empty type
  std::vector<CompactEvent> events_;  // replay order
  // Idempotency keys ("id") by event, parallel to events_ (index into ids_, 0: none); empty while
  // no line of the file carries one, so logs without ids pay nothing.
  internal::StringPool ids_;  // id 0 is "no id"
  std::vector<uint32_t> event_ids_;
  int64_t next_ = 0;
  SourceStats stats_;
  std::array<int64_t, internal::kMalformedReasonCount> malformed_{};
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_FILE_EVENT_SOURCE_H_
