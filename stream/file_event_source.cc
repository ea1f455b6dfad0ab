#include "stream/file_event_source.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/check.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "stream/event_codec.h"
#include "stream/internal/delimited_line_parser.h"
#include "stream/internal/whole_file.h"

namespace freshet::stream {
namespace {

using internal::MalformedReason;

// Log lines quote at most this much of a malformed line.
constexpr size_t kExcerptBytes = 80;
constexpr int kMalformedLogBurst = 10;
constexpr absl::Duration kMalformedLogPeriod = absl::Seconds(1);

absl::Status CheckWeightOption(absl::string_view what, float weight) {
  if (std::isfinite(weight) && weight >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", weight, "; weights must be finite and >= 0"));
}

absl::Status CheckOptions(const FileSourceOptions& options) {
  if ((options.format == FileFormat::kCsv || options.format == FileFormat::kTsv) &&
      options.columns.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FileFormatName(options.format),
                     " needs a column mapping (columns), e.g. \"user,item,ts\""));
  }
  if (options.format == FileFormat::kCsv || options.format == FileFormat::kTsv) {
    FRESHET_RETURN_IF_ERROR(ValidateColumns(options.columns));
  }
  if (options.format == FileFormat::kCsv) {
    if (options.delimiter.empty()) return absl::InvalidArgumentError("the csv delimiter is empty");
    if (options.delimiter.find_first_of("\"\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad csv delimiter \"",
                                                     absl::CEscape(options.delimiter),
                                                     "\": it may not contain '\"', CR or LF"));
    }
  }
  FRESHET_RETURN_IF_ERROR(CheckWeightOption("default_weight", options.default_weight));
  for (const auto& [type, weight] : options.type_weights) {
    FRESHET_RETURN_IF_ERROR(
        CheckWeightOption(absl::StrCat("the weight of type \"", type, "\""), weight));
  }
  return absl::OkStatus();
}

bool IsPreset(FileFormat format) {
  return format == FileFormat::kMovieLens100k || format == FileFormat::kMovieLens;
}

TimestampUnit UnitOf(const FileSourceOptions& options) {
  return options.ts_unit.value_or(
      options.format == FileFormat::kJsonl ? TimestampUnit::kMilliseconds : TimestampUnit::kAuto);
}

// The rules every line goes by once parsed (and, for jsonl, its syntax too).
EventCodecOptions CodecOptions(const FileSourceOptions& options) {
  EventCodecOptions codec;
  codec.type_weights = options.type_weights;
  codec.default_weight = options.default_weight;
  codec.default_type =
      options.default_type.empty() && IsPreset(options.format) ? "rating" : options.default_type;
  codec.limits = options.limits;
  codec.ts_unit = UnitOf(options);
  return codec;
}

// jsonl: every line is one event object, parsed by the codec.
class JsonLineParser final : public internal::LineParser {
 public:
  explicit JsonLineParser(EventCodec* codec) : codec_(codec) {}
  std::optional<MalformedReason> Parse(absl::string_view line, internal::ParsedLine* out) override {
    return codec_->Parse(line, out);
  }

 private:
  EventCodec* const codec_;
};

// The parser for the format, with the presets' fixed layouts applied.
std::unique_ptr<internal::LineParser> MakeParser(const FileSourceOptions& options,
                                                 EventCodec* codec) {
  const TimestampUnit unit = UnitOf(options);
  const std::vector<ColumnRole> movielens_columns = {ColumnRole::kUser, ColumnRole::kItem,
                                                     ColumnRole::kSkip, ColumnRole::kTimestamp};
  switch (options.format) {
    case FileFormat::kMovieLens100k:
      return std::make_unique<internal::DelimitedLineParser>("\t", movielens_columns, unit);
    case FileFormat::kMovieLens:
      return std::make_unique<internal::DelimitedLineParser>("::", movielens_columns, unit);
    case FileFormat::kCsv:
      return std::make_unique<internal::DelimitedLineParser>(options.delimiter, options.columns,
                                                             unit);
    case FileFormat::kTsv:
      return std::make_unique<internal::DelimitedLineParser>("\t", options.columns, unit);
    case FileFormat::kJsonl:
      return std::make_unique<JsonLineParser>(codec);
  }
  return nullptr;
}

bool IsBlank(absl::string_view line) {
  for (const char c : line) {
    if (c != ' ' && c != '\t') return false;
  }
  return true;
}

std::string Excerpt(absl::string_view line) {
  if (line.size() <= kExcerptBytes) return absl::CHexEscape(line);
  return absl::StrCat(absl::CHexEscape(line.substr(0, kExcerptBytes)), "...");
}

}  // namespace

// Turns the decoded bytes of one file into the source's compact events and counters.
class FileEventSource::Loader {
 public:
  Loader(FileEventSource* source, const FileSourceOptions& options, const EventCodec& codec)
      : source_(source),
        options_(options),
        codec_(codec),
        skip_header_(options.header && !IsPreset(options.format) &&
                     options.format != FileFormat::kJsonl),
        limiter_(kMalformedLogBurst, kMalformedLogPeriod) {
    // Type id 0 is the empty type, so that "no type" needs no lookup.
    FRESHET_CHECK(source_->types_.Intern("") == 0);
    type_weights_.push_back(options_.default_weight);
  }

  void Load(const internal::WholeFile& file, internal::LineParser& parser) {
    absl::string_view data = file.contents();
    absl::ConsumePrefix(&data, "\xEF\xBB\xBF");  // a UTF-8 byte-order mark is not data
    // One event per line, give or take: reserving up front avoids regrowing a vector of millions.
    source_->events_.reserve(std::count(data.begin(), data.end(), '\n') + 1);
    bool header_pending = skip_header_;
    int64_t line_number = 0;
    internal::ParsedLine parsed;
    while (!data.empty()) {
      ++line_number;
      const void* newline = std::memchr(data.data(), '\n', data.size());
      const bool terminated = newline != nullptr;
      const size_t length =
          terminated ? static_cast<const char*>(newline) - data.data() : data.size();
      absl::string_view line = data.substr(0, length);
      data.remove_prefix(terminated ? length + 1 : length);

      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (IsBlank(line)) continue;
      if (header_pending) {
        header_pending = false;
        continue;
      }
      ++source_->stats_.records_read;
      std::optional<MalformedReason> bad = parser.Parse(line, &parsed);
      // An unterminated last line is where a crash or a cut-off download shows; when it does
      // not parse, say so rather than reporting a symptom. A truncated gzip stream stops at an
      // arbitrary byte, so its last partial line is dropped even if it looks complete.
      if (!terminated && (bad.has_value() || file.truncated)) {
        bad = MalformedReason::kTruncatedLastLine;
      }
      if (!bad.has_value()) bad = Add(parsed);
      if (bad.has_value()) Malformed(*bad, line_number, line);
    }
    if (file.truncated) {
      Count(MalformedReason::kTruncatedGzip);
      LogWarning(absl::StrCat(source_->path_,
                              ": the gzip stream ends early (truncated file?); "
                              "keeping the ",
                              file.size, " bytes that decoded"));
    }
    source_->stats_.events = static_cast<int64_t>(source_->events_.size());
  }

 private:
  std::optional<MalformedReason> Add(const internal::ParsedLine& parsed) {
    // A missing timestamp repeats the previous one, so the event keeps its place in the replay.
    // The codec checks the ids (the type's too) before it asks for the type's weight, which
    // interns the type: a line rejected for its ids leaves nothing behind.
    uint32_t type = 0;
    ResolvedEvent event;
    if (auto bad = codec_.Resolve(
            parsed, previous_ts_ms_,
            [&](absl::string_view type_name) {
              type = TypeId(type_name);
              return type_weights_[type];
            },
            &event)) {
      return bad;
    }
    if (parsed.has_weight) type = TypeId(event.type);
    previous_ts_ms_ = event.ts_ms;
    source_->events_.push_back(CompactEvent{
        .ts_ms = event.ts_ms,
        .weight = event.weight,
        .user = source_->users_.Intern(event.user),
        .item = source_->items_.Intern(event.item),
        .type = type,
    });
    if (!event.id.empty() || !source_->event_ids_.empty()) {
      // The first id: every earlier event has none.
      if (source_->event_ids_.empty()) {
        FRESHET_CHECK(source_->ids_.Intern("") == 0);
        source_->event_ids_.assign(source_->events_.size() - 1, 0);
      }
      source_->event_ids_.push_back(source_->ids_.Intern(event.id));
    }
    return std::nullopt;
  }

  // Interns `type` and resolves its weight once, when it is first seen.
  uint32_t TypeId(absl::string_view type) {
    // Logs come in runs of the same type and have few types: skip the hash lookup for a repeat.
    if (type == source_->types_.Get(last_type_)) return last_type_;
    const uint32_t id = source_->types_.Intern(type);
    last_type_ = id;
    if (id < type_weights_.size()) return id;
    type_weights_.push_back(codec_.TypeWeight(type));
    if (!options_.type_weights.empty() && !options_.type_weights.contains(type)) {
      LogWarning(absl::StrCat(source_->path_, ": event type \"", absl::CHexEscape(type),
                              "\" has no configured weight; using the default weight ",
                              options_.default_weight));
    }
    return id;
  }

  void Count(MalformedReason reason) {
    ++source_->malformed_[static_cast<int>(reason)];
    ++source_->stats_.malformed;
  }

  void Malformed(MalformedReason reason, int64_t line_number, absl::string_view line) {
    Count(reason);
    int64_t suppressed = 0;
    if (!limiter_.Allow(&suppressed)) return;
    std::string message =
        absl::StrCat(source_->path_, ":", line_number, ": ", internal::MalformedReasonName(reason),
                     ": \"", Excerpt(line), "\"");
    if (suppressed > 0) {
      absl::StrAppend(&message, " (", suppressed, " more malformed lines not logged)");
    }
    LogWarning(message);
  }

  FileEventSource* const source_;
  const FileSourceOptions& options_;
  const EventCodec& codec_;
  const bool skip_header_;
  RateLimiter limiter_;
  std::vector<float> type_weights_;  // by type id
  uint32_t last_type_ = 0;
  int64_t previous_ts_ms_ = 0;
};

absl::StatusOr<std::unique_ptr<FileEventSource>> FileEventSource::Open(
    const std::string& path, const FileSourceOptions& options) {
  FRESHET_RETURN_IF_ERROR(CheckOptions(options));
  EventCodec codec(CodecOptions(options));
  std::unique_ptr<internal::LineParser> parser = MakeParser(options, &codec);
  FRESHET_CHECK(parser != nullptr);

  const absl::Time start = absl::Now();
  FRESHET_ASSIGN_OR_RETURN(internal::WholeFile file,
                           internal::ReadWholeFile(path, internal::kLinePadding));
  // Compression is told by the bytes, not the name; a name that says otherwise is worth a line,
  // since its records may then all be refused as malformed.
  if (!file.gzip && file.size > 0 && absl::EndsWith(path, ".gz")) {
    LogWarning(absl::StrCat(path,
                            ": the name ends in .gz but the file does not start like gzip "
                            "(1f 8b): read as plain text"));
  }

  auto source = absl::WrapUnique(new FileEventSource(path));
  Loader(source.get(), options, codec).Load(file, *parser);
  file = internal::WholeFile();  // the raw bytes are no longer needed; free them before sorting

  std::vector<CompactEvent>& events = source->events_;
  // The reservation counted every line; give it back only when many lines were not events.
  if (events.capacity() - events.size() > events.capacity() / 8) events.shrink_to_fit();
  const auto by_time = [](const CompactEvent& a, const CompactEvent& b) {
    return a.ts_ms < b.ts_ms;
  };
  if (options.sort_by_time && !std::is_sorted(events.begin(), events.end(), by_time)) {
    if (source->event_ids_.empty()) {
      std::stable_sort(events.begin(), events.end(), by_time);
    } else {
      // Events and their ids move together.
      std::vector<uint32_t> order(events.size());
      std::iota(order.begin(), order.end(), 0u);
      std::stable_sort(order.begin(), order.end(),
                       [&](uint32_t a, uint32_t b) { return by_time(events[a], events[b]); });
      std::vector<CompactEvent> sorted_events;
      std::vector<uint32_t> sorted_ids;
      sorted_events.reserve(events.size());
      sorted_ids.reserve(events.size());
      for (const uint32_t i : order) {
        sorted_events.push_back(events[i]);
        sorted_ids.push_back(source->event_ids_[i]);
      }
      events = std::move(sorted_events);
      source->event_ids_ = std::move(sorted_ids);
    }
  }

  std::string summary = absl::StrCat(
      source->Name(), ": ", events.size(), " events from ", source->stats_.records_read, " lines (",
      source->users_.size(), " users, ", source->items_.size(), " items) in ",
      absl::StrFormat("%.3f", absl::ToDoubleSeconds(absl::Now() - start)), " s");
  if (source->stats_.malformed > 0) {
    std::vector<std::string> counts;
    for (const auto& [reason, count] : source->malformed_by_reason()) {
      counts.push_back(absl::StrCat(reason, ": ", count));
    }
    std::sort(counts.begin(), counts.end());
    absl::StrAppend(&summary, "; skipped ", source->stats_.malformed, " malformed (",
                    absl::StrJoin(counts, ", "), ")");
  }
  LogInfo(summary);
  return source;
}

absl::Status FileEventSource::Poll(size_t max_events, absl::Duration /*timeout*/,
                                   std::vector<Event>* out) {
  FRESHET_CHECK(out != nullptr);
  const size_t remaining = events_.size() - static_cast<size_t>(next_);
  const size_t n = std::min(max_events, remaining);
  if (n == 0) return absl::OkStatus();
  // Grow geometrically even when a caller keeps appending to the same vector.
  if (out->capacity() - out->size() < n) {
    out->reserve(std::max(out->size() + n, 2 * out->capacity()));
  }
  for (size_t i = static_cast<size_t>(next_), end = i + n; i < end; ++i) {
    const CompactEvent& compact = events_[i];
    Event& event = out->emplace_back();
    const absl::string_view user = users_.Get(compact.user);
    const absl::string_view item = items_.Get(compact.item);
    const absl::string_view type = types_.Get(compact.type);
    event.user.assign(user.data(), user.size());
    event.item.assign(item.data(), item.size());
    event.type.assign(type.data(), type.size());
    event.weight = compact.weight;
    event.ts_ms = compact.ts_ms;
    event.position.offset = static_cast<int64_t>(i);
    if (!event_ids_.empty()) {
      const absl::string_view id = ids_.Get(event_ids_[i]);
      event.id.assign(id.data(), id.size());
    }
  }
  next_ += static_cast<int64_t>(n);
  return absl::OkStatus();
}

absl::Status FileEventSource::Resume(AppliedFn applied) {
  const int64_t offset = applied(0, 0);
  if (offset >= size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored position of ", Name(), " is event ", offset, ", but the file holds only ",
        size(), " events: is it the same file? (--reset starts over)"));
  }
  FRESHET_RETURN_IF_ERROR(SeekAfter(offset));
  if (offset >= 0) {
    LogInfo(absl::StrCat("resuming ", Name(), " after event ", offset, " of ", size()));
  }
  return absl::OkStatus();
}

absl::Status FileEventSource::SeekAfter(int64_t offset) {
  if (offset < -1 || offset >= size()) {
    return absl::OutOfRangeError(absl::StrCat("cannot seek ", Name(), " after offset ", offset,
                                              ": valid offsets are -1 to ", size() - 1));
  }
  next_ = offset + 1;
  return absl::OkStatus();
}

absl::flat_hash_map<std::string, int64_t> FileEventSource::malformed_by_reason() const {
  absl::flat_hash_map<std::string, int64_t> counts;
  for (int i = 0; i < internal::kMalformedReasonCount; ++i) {
    if (malformed_[i] > 0) {
      counts.emplace(internal::MalformedReasonName(static_cast<MalformedReason>(i)), malformed_[i]);
    }
  }
  return counts;
}

}  // namespace freshet::stream
