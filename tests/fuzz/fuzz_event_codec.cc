// Fuzz target: the event codec. Every input goes through
//   - EventCodec::Decode (stream/event_codec.h: POST /v1/events, Kafka messages) with two option
//     sets, and whatever decodes through EventCodec::Encode and back: it must decode to the same
//     event (the codec's round-trip promise);
//   - FileEventSource::Open on a file holding the input, as jsonl, as csv (two column mappings,
//     one with a "::" delimiter and a header) and as tsv; the input may also be gzip.
// Whatever is accepted must satisfy the rules of stream/event_validation.h: user and item
// non-empty, ids valid UTF-8 and at most limits.max_id_bytes, weight finite in [0, max_weight],
// ts in [0, kMaxEventTsMs). The file source's counters must add up, its replay must be in
// timestamp order with offsets 0, 1, 2, ..., and a single jsonl line must decode the same way
// through the file source as through EventCodec (the header promises one set of rules).
//
// The file is a memfd reopened through /proc/self/fd (no disk I/O, no clash between -jobs), or a
// per-process file under $TMPDIR where memfd is unavailable.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/utf8.h"
#include "stream/event.h"
#include "stream/event_codec.h"
#include "stream/event_validation.h"
#include "stream/file_event_source.h"
#include "stream/file_source_options.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::stream {
namespace {

constexpr int64_t kDefaultTsMs = 1'700'000'000'000;

// "heavy" weighs more than the default max_weight: an event of that type without an explicit
// weight must be rejected. "free" weighs 0, which is allowed.
absl::flat_hash_map<std::string, float> TypeWeights() {
  return {{"click", 2.0f}, {"purchase", 8.0f}, {"free", 0.0f}, {"heavy", 1000.0f}};
}

std::string Describe(const Event& e) {
  return absl::StrCat("user=\"", absl::CHexEscape(e.user), "\" item=\"", absl::CHexEscape(e.item),
                      "\" type=\"", absl::CHexEscape(e.type), "\" id=\"", absl::CHexEscape(e.id),
                      "\" weight=", e.weight, " ts_ms=", e.ts_ms, " offset=", e.position.offset);
}

// The rules of stream/event_validation.h, restated.
void CheckAccepted(const Event& e, const EventLimits& limits, absl::string_view where) {
  const auto what = [&] { return absl::StrCat(where, ": accepted ", Describe(e)); };
  const size_t max_id = static_cast<size_t>(limits.max_id_bytes);
  FUZZ_CHECK(!e.user.empty(), what());
  FUZZ_CHECK(!e.item.empty(), what());
  FUZZ_CHECK(e.user.size() <= max_id, what());
  FUZZ_CHECK(e.item.size() <= max_id, what());
  FUZZ_CHECK(e.type.size() <= max_id, what());
  FUZZ_CHECK(e.id.size() <= max_id, what());
  FUZZ_CHECK(IsValidUtf8(e.user), what());
  FUZZ_CHECK(IsValidUtf8(e.item), what());
  FUZZ_CHECK(IsValidUtf8(e.type), what());
  FUZZ_CHECK(IsValidUtf8(e.id), what());
  FUZZ_CHECK(std::isfinite(e.weight), what());
  FUZZ_CHECK(e.weight >= 0 && e.weight <= limits.max_weight, what());
  FUZZ_CHECK(e.ts_ms >= 0 && e.ts_ms < kMaxEventTsMs, what());
}

EventCodecOptions StandardJsonOptions() {
  EventCodecOptions o;
  o.type_weights = TypeWeights();
  return o;
}

EventCodecOptions TightJsonOptions() {
  EventCodecOptions o;
  o.type_weights = TypeWeights();
  o.default_weight = 3.0f;
  o.default_type = "view";
  o.limits.max_weight = 5.0f;
  o.limits.max_id_bytes = 8;
  return o;
}

FileSourceOptions MustForFormat(absl::string_view format, absl::string_view columns) {
  absl::StatusOr<FileSourceOptions> o = FileSourceOptions::ForFormat(format);
  FUZZ_CHECK(o.ok(), o.status().ToString());
  if (!columns.empty()) {
    absl::StatusOr<std::vector<ColumnRole>> c = ParseColumns(columns);
    FUZZ_CHECK(c.ok(), c.status().ToString());
    o->columns = *c;
  }
  o->type_weights = TypeWeights();
  return *o;
}

struct FileCase {
  const char* name;
  FileSourceOptions options;
};

std::vector<FileCase> MakeFileCases() {
  std::vector<FileCase> cases;
  cases.push_back({"jsonl", MustForFormat("jsonl", "")});
  cases.push_back({"csv", MustForFormat("csv", "user,item,ts,weight,type")});
  FileSourceOptions tight = MustForFormat("csv", " _ , item,user , type, ts");
  tight.delimiter = "::";
  tight.header = true;
  tight.ts_unit = TimestampUnit::kSeconds;
  tight.default_type = "view";
  tight.default_weight = 3.0f;
  tight.limits.max_weight = 5.0f;
  tight.limits.max_id_bytes = 8;
  tight.sort_by_time = false;
  cases.push_back({"csv-tight", tight});
  FileSourceOptions tsv = MustForFormat("tsv", "item,user,weight");
  tsv.ts_unit = TimestampUnit::kMilliseconds;
  cases.push_back({"tsv", tsv});
  return cases;
}

// The file the sources read: a memfd (path /proc/self/fd/N) or a per-process temporary file.
struct InputFile {
  int fd = -1;
  std::string path;
  std::string fallback_to_unlink;
};

InputFile OpenInputFile() {
  InputFile f;
  f.fd = memfd_create("freshet_fuzz_event_codec", MFD_CLOEXEC);
  if (f.fd >= 0) {
    f.path = absl::StrCat("/proc/self/fd/", f.fd);
    if (access(f.path.c_str(), R_OK) == 0) return f;
    close(f.fd);
  }
  const char* tmp = std::getenv("TMPDIR");
  f.path = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/freshet_fuzz_event_codec.",
                        getpid());
  f.fd = open(f.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(f.fd >= 0, absl::StrCat("cannot create ", f.path));
  f.fallback_to_unlink = f.path;
  return f;
}

struct State {
  InputFile file = OpenInputFile();
  EventCodec standard{StandardJsonOptions()};
  EventCodec tight{TightJsonOptions()};
  std::vector<FileCase> file_cases = MakeFileCases();
};

State* g_state = nullptr;

void RemoveFallbackFile() {
  if (g_state != nullptr && !g_state->file.fallback_to_unlink.empty()) {
    unlink(g_state->file.fallback_to_unlink.c_str());
  }
}

void WriteInput(const InputFile& f, absl::string_view data) {
  FUZZ_CHECK(ftruncate(f.fd, 0) == 0, "ftruncate");
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        pwrite(f.fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    FUZZ_CHECK(n > 0, absl::StrCat("pwrite to ", f.path));
    done += static_cast<size_t>(n);
  }
}

// Opens the input with `c.options`, checks the source and returns its events in replay order.
std::optional<std::vector<Event>> RunFileSource(const std::string& path, const FileCase& c) {
  absl::StatusOr<std::unique_ptr<FileEventSource>> opened = FileEventSource::Open(path, c.options);
  if (!opened.ok()) {
    // The options are valid and the file exists: only a corrupt gzip stream may fail.
    FUZZ_CHECK(opened.status().code() == absl::StatusCode::kDataLoss,
               absl::StrCat(c.name, ": ", opened.status().ToString()));
    return std::nullopt;
  }
  FileEventSource& source = **opened;
  const SourceStats stats = source.stats();
  const std::string where = absl::StrCat(c.name, " file source");
  FUZZ_CHECK(stats.events == source.size(), where);
  int64_t malformed = 0;
  int64_t truncated_gzip = 0;
  for (const auto& [reason, count] : source.malformed_by_reason()) {
    FUZZ_CHECK(count > 0, absl::StrCat(where, ": reason ", reason));
    malformed += count;
    if (reason == "truncated gzip") truncated_gzip = count;
  }
  FUZZ_CHECK(malformed == stats.malformed,
             absl::StrCat(where, ": reasons sum to ", malformed, ", malformed ", stats.malformed));
  FUZZ_CHECK(truncated_gzip <= 1, where);
  FUZZ_CHECK(
      stats.events + stats.malformed - truncated_gzip == stats.records_read,
      absl::StrCat(where, ": events ", stats.events, " + malformed ", stats.malformed,
                   " - truncated gzip ", truncated_gzip, " != records ", stats.records_read));

  std::vector<Event> events;
  while (!source.Finished()) {
    const size_t before = events.size();
    const absl::Status polled = source.Poll(7, absl::ZeroDuration(), &events);
    FUZZ_CHECK(polled.ok(), absl::StrCat(where, ": Poll: ", polled.ToString()));
    FUZZ_CHECK(events.size() > before, absl::StrCat(where, ": Poll made no progress"));
  }
  FUZZ_CHECK(static_cast<int64_t>(events.size()) == source.size(), where);
  FUZZ_CHECK(source.next_offset() == source.size(), where);
  for (size_t i = 0; i < events.size(); ++i) {
    CheckAccepted(events[i], c.options.limits, where);
    FUZZ_CHECK(events[i].position.offset == static_cast<int64_t>(i),
               absl::StrCat(where, ": event ", i, " ", Describe(events[i])));
    if (c.options.sort_by_time && i > 0) {
      FUZZ_CHECK(events[i - 1].ts_ms <= events[i].ts_ms,
                 absl::StrCat(where, ": replay not in time order at ", i));
    }
  }
  // User and item ids are counted among the decoded events only. Not checked for types: the
  // loader interns a line's type before validating the line, so distinct_types() also counts
  // the types of rejected lines (file_event_source.h says "among the decoded events").
  absl::flat_hash_set<absl::string_view> users;
  absl::flat_hash_set<absl::string_view> items;
  for (const Event& e : events) {
    users.insert(e.user);
    items.insert(e.item);
  }
  FUZZ_CHECK(source.distinct_users() == static_cast<int64_t>(users.size()),
             absl::StrCat(where, ": distinct_users ", source.distinct_users(), ", events have ",
                          users.size()));
  FUZZ_CHECK(source.distinct_items() == static_cast<int64_t>(items.size()),
             absl::StrCat(where, ": distinct_items ", source.distinct_items(), ", events have ",
                          items.size()));
  FUZZ_CHECK(!source.SeekAfter(-2).ok(), where);
  FUZZ_CHECK(!source.SeekAfter(source.size()).ok(), where);
  if (source.size() > 0) {
    FUZZ_CHECK(source.SeekAfter(source.size() - 1).ok() && source.Finished(), where);
    source.Rewind();
    FUZZ_CHECK(source.next_offset() == 0 && !source.Finished(), where);
  }
  return events;
}

bool IsBlank(absl::string_view s) {
  for (const char c : s) {
    if (c != ' ' && c != '\t') return false;
  }
  return true;
}

// True when the file source reads `in` as exactly the one jsonl line `in` (no line break, no
// byte-order mark, no gzip, not blank), so it must decode as EventCodec decodes it.
bool IsOneJsonLine(absl::string_view in) {
  return !in.empty() && in.find_first_of("\r\n") == absl::string_view::npos &&
         !absl::StartsWith(in, "\xEF\xBB\xBF") && !absl::StartsWith(in, "\x1f\x8b") && !IsBlank(in);
}

// Encodes an accepted event and decodes it again with the same codec and default: the same event
// must come back, from one line of valid UTF-8.
void CheckRoundTrip(EventCodec& codec, const Event& e, int64_t default_ts_ms,
                    absl::string_view where) {
  std::string json;
  EventCodec::Encode(e, &json);
  const auto what = [&] { return absl::StrCat(where, ": ", Describe(e), "\n  encoded as ", json); };
  FUZZ_CHECK(IsValidUtf8(json), what());
  FUZZ_CHECK(json.find_first_of("\r\n") == std::string::npos, what());
  Event back;
  const std::optional<internal::MalformedReason> bad = codec.Decode(json, default_ts_ms, &back);
  FUZZ_CHECK(!bad.has_value(),
             absl::StrCat(what(), "\n  rejected: ",
                          bad.has_value() ? internal::MalformedReasonName(*bad) : ""));
  FUZZ_CHECK(back.user == e.user && back.item == e.item && back.type == e.type &&
                 back.weight == e.weight && back.ts_ms == e.ts_ms && back.id == e.id,
             absl::StrCat(what(), "\n  decoded as ", Describe(back)));
}

}  // namespace
}  // namespace freshet::stream

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Every Open logs a summary and every malformed line a warning: keep the fuzzer's output clean.
  freshet::SetMinLogLevel(freshet::LogLevel::kError);
  freshet::stream::g_state = new freshet::stream::State();
  std::atexit(freshet::stream::RemoveFallbackFile);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet::stream;
  State& state = *g_state;
  const absl::string_view in(reinterpret_cast<const char*>(data), size);

  // EventCodec: standard options with default ts 0 (as a file source's first event), and tight
  // limits with a realistic default ts.
  Event decoded;
  const std::optional<freshet::stream::internal::MalformedReason> rejected =
      state.standard.Decode(in, /*default_ts_ms=*/0, &decoded);
  if (!rejected.has_value()) {
    CheckAccepted(decoded, state.standard.options().limits, "decoder");
    CheckRoundTrip(state.standard, decoded, 0, "decoder round trip");
  }
  Event tight;
  if (!state.tight.Decode(in, kDefaultTsMs, &tight).has_value()) {
    CheckAccepted(tight, state.tight.options().limits, "tight decoder");
    CheckRoundTrip(state.tight, tight, kDefaultTsMs, "tight decoder round trip");
  }

  WriteInput(state.file, in);
  for (const FileCase& c : state.file_cases) {
    std::optional<std::vector<Event>> events = RunFileSource(state.file.path, c);
    if (c.options.format != FileFormat::kJsonl || !IsOneJsonLine(in)) continue;
    FUZZ_CHECK(events.has_value(), "jsonl: a plain file failed to open");
    const std::string reason =
        rejected.has_value()
            ? std::string(freshet::stream::internal::MalformedReasonName(*rejected))
            : std::string("accepted");
    FUZZ_CHECK(events->size() == (rejected.has_value() ? 0u : 1u),
               absl::StrCat("jsonl file source gave ", events->size(),
                            " events for one line; EventCodec: ", reason));
    if (!rejected.has_value()) {
      const Event& e = (*events)[0];
      FUZZ_CHECK(e.user == decoded.user && e.item == decoded.item && e.type == decoded.type &&
                     e.weight == decoded.weight && e.ts_ms == decoded.ts_ms && e.id == decoded.id,
                 absl::StrCat("file: ", Describe(e), "\n  decoder: ", Describe(decoded)));
    }
  }
  return 0;
}
