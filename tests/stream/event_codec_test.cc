// EventCodec and the ways in and out that use it without a broker or a server:
// the corpus (tests/stream/event_corpus.h) through the codec and through a
// jsonl FileEventSource, encode -> decode round trips, and the synthetic
// generator's output read back. The Kafka source and producer run the corpus in
// tests/stream/kafka/kafka_event_corpus_test.cc, POST /v1/events in
// tests/serving/api_test.cc.
#include "stream/event_codec.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "stream/event.h"
#include "stream/event_validation.h"
#include "stream/file_event_source.h"
#include "stream/file_source_options.h"
#include "stream/synthetic/synthetic_stream.h"
#include "tests/stream/event_corpus.h"
#include "tests/stream/temp_files.h"

namespace freshet::stream {
namespace {

using internal::MalformedReason;
using internal::MalformedReasonName;
using testing::CorpusCodecOptions;
using testing::DecodedAs;
using testing::InvalidEvents;
using testing::SameEvent;
using testing::ValidEvents;

constexpr int64_t kDefaultTsMs = 1'650'000'000'000;

std::string TempPath(absl::string_view name) { return testing::TempPath("codec", name); }

std::string WriteFile(absl::string_view name, absl::string_view contents) {
  return testing::WriteTempFile("codec", name, contents);
}

std::string ReadFile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// A jsonl FileEventSource with the corpus settings, in input order.
FileSourceOptions CorpusFileOptions() {
  absl::StatusOr<FileSourceOptions> options = FileSourceOptions::ForFormat("jsonl");
  EXPECT_TRUE(options.ok()) << options.status();
  const EventCodecOptions codec = CorpusCodecOptions();
  options->type_weights = codec.type_weights;
  options->default_weight = codec.default_weight;
  options->default_type = codec.default_type;
  options->limits = codec.limits;
  options->sort_by_time = false;
  return *options;
}

std::vector<Event> ReadAll(FileEventSource &source) {
  std::vector<Event> events;
  EXPECT_TRUE(
      source.Poll(static_cast<size_t>(source.size()) + 1, absl::ZeroDuration(), &events).ok());
  return events;
}

Event MakeEvent(std::string user, std::string item, std::string type, float weight, int64_t ts_ms) {
  Event event;
  event.user = std::move(user);
  event.item = std::move(item);
  event.type = std::move(type);
  event.weight = weight;
  event.ts_ms = ts_ms;
  return event;
}

bool IsValidJson(absl::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element element;
  return parser.parse(text.data(), text.size()).get(element) == simdjson::SUCCESS;
}

TEST(EventCorpusTest, CasesAreSingleNonBlankLinesAndNoArrays) {
  // The same bytes must serve as a jsonl line, a Kafka value and a POST body.
  for (const auto &c : ValidEvents()) {
    EXPECT_EQ(c.json.find_first_of("\r\n"), std::string::npos) << c.json;
    EXPECT_NE(c.json.find_first_not_of(" \t"), std::string::npos);
  }
  for (const auto &c : InvalidEvents()) {
    EXPECT_EQ(c.json.find_first_of("\r\n"), std::string::npos) << c.json;
    EXPECT_NE(c.json.find_first_not_of(" \t"), std::string::npos);
    EXPECT_NE(c.json.front(), '[') << c.json;
  }
  EXPECT_GE(ValidEvents().size(), 40u);
  EXPECT_GE(InvalidEvents().size(), 50u);
  // The first valid case has a ts, so a file's default (the previous line's) is
  // defined by it.
  EXPECT_TRUE(ValidEvents().front().ts_ms.has_value());
}

TEST(EventCodecTest, DecodesEveryValidCorpusEvent) {
  EventCodec codec(CorpusCodecOptions());
  for (const auto &c : ValidEvents()) {
    Event event;
    event.position = SourcePosition{.stream = 3, .partition = 4, .offset = 5};
    const std::optional<MalformedReason> bad = codec.Decode(c.json, kDefaultTsMs, &event);
    ASSERT_FALSE(bad.has_value()) << c.json << " -> " << MalformedReasonName(*bad);
    EXPECT_TRUE(DecodedAs(c, event, kDefaultTsMs));
    EXPECT_EQ(event.position.offset, 5);  // untouched
  }
}

TEST(EventCodecTest, RejectsEveryInvalidCorpusEventForItsReason) {
  EventCodec codec(CorpusCodecOptions());
  for (const auto &c : InvalidEvents()) {
    Event event;
    const std::optional<MalformedReason> bad = codec.Decode(c.json, kDefaultTsMs, &event);
    ASSERT_TRUE(bad.has_value()) << c.json;
    EXPECT_EQ(std::string(MalformedReasonName(*bad)), std::string(MalformedReasonName(c.reason)))
        << c.json;
  }
}

TEST(EventCodecTest, DefaultTypeAndTypeWeights) {
  EventCodecOptions options = CorpusCodecOptions();
  options.default_type = "click";
  EventCodec codec(options);
  Event event;
  ASSERT_FALSE(codec.Decode(R"({"user":"u","item":"i","ts":5})", 0, &event).has_value());
  EXPECT_EQ(event.type, "click");
  EXPECT_EQ(event.weight, 2.0f);
  ASSERT_FALSE(codec.Decode(R"({"user":"u","item":"i","type":null})", 0, &event).has_value());
  EXPECT_EQ(event.type, "click");
  EXPECT_EQ(codec.TypeWeight("purchase"), 8.0f);
  EXPECT_EQ(codec.TypeWeight("no-such-type"), 1.0f);
}

TEST(EventCodecTest, TimestampUnitsForFiles) {
  EventCodecOptions options = CorpusCodecOptions();
  options.ts_unit = TimestampUnit::kSeconds;
  EventCodec seconds(options);
  Event event;
  ASSERT_FALSE(seconds.Decode(R"({"user":"u","item":"i","ts":1700000000})", 0, &event).has_value());
  EXPECT_EQ(event.ts_ms, 1'700'000'000'000);
  ASSERT_FALSE(
      seconds.Decode(R"({"user":"u","item":"i","ts":"1700000000.5"})", 0, &event).has_value());
  EXPECT_EQ(event.ts_ms, 1'700'000'000'500);
}

// Parse and Resolve apart, as the sources call them: Resolve reports missing
// and empty ids and asks for the type's weight only once the ids have passed.
TEST(EventCodecTest, ResolveChecksIdsBeforeAskingForTheWeight) {
  EventCodec codec(CorpusCodecOptions());
  std::string padded;  // the parsed views point into it
  const auto parse = [&](absl::string_view json, internal::ParsedLine *out) {
    padded.assign(json.data(), json.size());
    padded.append(internal::kLinePadding, '\0');
    return codec.Parse(absl::string_view(padded.data(), json.size()), out);
  };
  internal::ParsedLine parsed;
  ASSERT_FALSE(parse(R"({"item":"i","type":"click"})", &parsed).has_value());
  EXPECT_FALSE(parsed.has_user);
  EXPECT_TRUE(parsed.has_item);
  int asked = 0;
  const auto weight_of = [&](absl::string_view type) {
    ++asked;
    return type == "click" ? 4.0f : 1.0f;
  };
  ResolvedEvent resolved;
  EXPECT_EQ(codec.Resolve(parsed, 7, weight_of, &resolved), MalformedReason::kMissingUser);
  // A key (as Kafka gives one) fills the user in.
  parsed.has_user = true;
  parsed.user = "from-key";
  ASSERT_FALSE(codec.Resolve(parsed, 7, weight_of, &resolved).has_value());
  EXPECT_EQ(resolved.user, "from-key");
  EXPECT_EQ(resolved.type, "click");
  EXPECT_EQ(resolved.weight, 4.0f);
  EXPECT_EQ(resolved.ts_ms, 7);
  EXPECT_EQ(asked, 1);
  // Ids that fail are reported without asking for the weight.
  parsed.user = std::string(300, 'u');
  EXPECT_EQ(codec.Resolve(parsed, 7, weight_of, &resolved), MalformedReason::kIdTooLong);
  parsed.user = "\xff";
  EXPECT_EQ(codec.Resolve(parsed, 7, weight_of, &resolved), MalformedReason::kInvalidUtf8);
  EXPECT_EQ(asked, 1);
  // Parse leaves a missing item to Resolve too.
  ASSERT_FALSE(parse(R"({"user":"u"})", &parsed).has_value());
  EXPECT_TRUE(parsed.has_user);
  EXPECT_FALSE(parsed.has_item);
  EXPECT_EQ(codec.Resolve(parsed, 7, weight_of, &resolved), MalformedReason::kMissingItem);
}

// Moved from the Kafka producer's tests: the exact text of ARCHITECTURE.md, "Event format".
TEST(EventCodecTest, EncodeWritesTheDesignJsonFormat) {
  std::string json;
  const Event event = MakeEvent("u\"1", "7", "click", 2.5f, 1700000000123);
  EventCodec::Encode(event, &json);
  EXPECT_EQ(json, R"({"user":"u\"1","item":"7","type":"click","ts":1700000000123,"weight":2.5})");
  json.clear();
  Event with_id = event;
  with_id.id = std::string("retry-1");
  EventCodec::Encode(with_id, &json);
  EXPECT_EQ(json, R"({"user":"u\"1","item":"7","type":"click","ts":1700000000123,"weight":2.5,)"
                  R"("id":"retry-1"})");
  // No type: left out; whole weights without a decimal point; appends.
  const Event plain = MakeEvent("u", "i", "", 8, 0);
  EventCodec::Encode(plain, &json);
  EXPECT_TRUE(absl::EndsWith(json, R"("id":"retry-1"}{"user":"u","item":"i","ts":0,"weight":8})"))
      << json;
}

TEST(EventCodecTest, EveryValidCorpusEventRoundTrips) {
  EventCodec codec(CorpusCodecOptions());
  for (const auto &c : ValidEvents()) {
    Event decoded;
    ASSERT_FALSE(codec.Decode(c.json, kDefaultTsMs, &decoded).has_value()) << c.json;
    std::string json;
    EventCodec::Encode(decoded, &json);
    EXPECT_TRUE(IsValidJson(json)) << json;
    EXPECT_EQ(json.find('\n'), std::string::npos) << json;
    Event again;
    const std::optional<MalformedReason> bad = codec.Decode(json, kDefaultTsMs + 1, &again);
    ASSERT_FALSE(bad.has_value()) << json << " -> " << MalformedReasonName(*bad);
    EXPECT_TRUE(SameEvent(decoded, again)) << c.json << "\n  encoded as " << json;
  }
}

// Strings that need escaping, and the weights and timestamps a float and an
// int64 can hold.
TEST(EventCodecTest, AwkwardStringsWeightsAndTimestampsRoundTrip) {
  EventCodecOptions options;
  options.limits.max_weight = std::numeric_limits<float>::max();
  EventCodec codec(options);
  const auto round_trip = [&](const Event &event) {
    std::string json;
    EventCodec::Encode(event, &json);
    Event back;
    const std::optional<MalformedReason> bad = codec.Decode(json, 0, &back);
    if (bad.has_value()) {
      return ::testing::AssertionFailure() << json << " -> " << MalformedReasonName(*bad);
    }
    if (!SameEvent(event, back)) {
      return ::testing::AssertionFailure()
             << json << " decoded to weight " << back.weight << " ts " << back.ts_ms;
    }
    if (!IsValidJson(json)) return ::testing::AssertionFailure() << json << " is not JSON";
    return ::testing::AssertionSuccess();
  };
  Event event = MakeEvent("u", "i", "", 1, 1'700'000'000'000);
  for (const std::string &s :
       {std::string("quote\" backslash\\ slash/"), std::string("\x01\x1f tab\t nl\n cr\r"),
        std::string("del\x7f"), std::string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
        std::string("{\"user\":\"x\"}"), std::string("\\u0041")}) {
    event.user = s;
    event.item = s;
    event.type = s;
    event.id = s;
    EXPECT_TRUE(round_trip(event)) << absl::CHexEscape(s);
  }
  event = MakeEvent("x", "x", "", 1, 1'700'000'000'000);
  std::mt19937_64 rng(42);
  std::vector<float> weights = {0.0f,
                                0.1f,
                                1.0f / 3,
                                2.5f,
                                16777216.0f,
                                16777218.0f,
                                1e6f,
                                1e6f + 0.5f,
                                1.2345678f,
                                std::numeric_limits<float>::min(),
                                std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::max()};
  // Random finite non-negative floats, uniform over their bit patterns.
  while (weights.size() < 200'000) {
    const uint32_t bits = static_cast<uint32_t>(rng()) & 0x7fffffffu;
    float w;
    std::memcpy(&w, &bits, sizeof(w));
    if (std::isfinite(w)) weights.push_back(w);
  }
  int failures = 0;
  for (const float w : weights) {
    event.weight = w;
    if (!round_trip(event) && ++failures <= 10) {
      ADD_FAILURE() << "weight " << absl::StrFormat("%.9g", w);
    }
  }
  EXPECT_EQ(failures, 0);
  event.weight = 1;
  for (int i = 0; i < 10'000; ++i) {
    event.ts_ms = static_cast<int64_t>(rng() % static_cast<uint64_t>(kMaxEventTsMs));
    ASSERT_TRUE(round_trip(event));
  }
  event.ts_ms = kMaxEventTsMs - 1;
  EXPECT_TRUE(round_trip(event));
  event.ts_ms = 0;
  EXPECT_TRUE(round_trip(event));
}

// An event that decoding would reject still encodes as valid JSON, which
// decoding rejects.
TEST(EventCodecTest, UnacceptableEventsEncodeToJsonThatIsRejected) {
  EventCodec codec(EventCodecOptions{});  // max_weight 100
  Event event = MakeEvent("u", "i", "", 1, 1'700'000'000'000);
  for (const float w :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity(), -1.0f, 1000.0f}) {
    event.weight = w;
    std::string json;
    EventCodec::Encode(event, &json);
    EXPECT_TRUE(IsValidJson(json)) << json;
    Event back;
    EXPECT_EQ(codec.Decode(json, 0, &back), MalformedReason::kBadWeight) << json;
  }
  event.weight = 1;
  event.ts_ms = -1;
  std::string json;
  EventCodec::Encode(event, &json);
  Event back;
  EXPECT_EQ(codec.Decode(json, 0, &back), MalformedReason::kBadTimestamp) << json;
  event.ts_ms = 0;
  event.user.clear();
  json.clear();
  EventCodec::Encode(event, &json);
  EXPECT_EQ(codec.Decode(json, 0, &back), MalformedReason::kEmptyUser) << json;
  // Bytes that are not UTF-8 cannot be written as JSON: they become U+FFFD.
  event = MakeEvent("u\xff", "i", "", 1, 0);
  json.clear();
  EventCodec::Encode(event, &json);
  EXPECT_TRUE(IsValidJson(json)) << json;
  ASSERT_FALSE(codec.Decode(json, 0, &back).has_value()) << json;
  EXPECT_EQ(back.user, "u\xef\xbf\xbd");
}

TEST(EventCodecFileSourceTest, ReadsTheValidCorpusAsTheCodecDoes) {
  std::string contents;
  for (const auto &c : ValidEvents()) absl::StrAppend(&contents, c.json, "\n");
  const std::string path = WriteFile("valid.jsonl", contents);
  auto source = FileEventSource::Open(path, CorpusFileOptions());
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->stats().malformed, 0);
  const std::vector<Event> events = ReadAll(**source);
  ASSERT_EQ(events.size(), ValidEvents().size());
  int64_t previous_ts_ms = 0;  // a line without ts repeats the one before
  for (size_t i = 0; i < events.size(); ++i) {
    const auto &c = ValidEvents()[i];
    EXPECT_TRUE(DecodedAs(c, events[i], previous_ts_ms)) << "line " << i + 1;
    previous_ts_ms = events[i].ts_ms;
  }
}

TEST(EventCodecFileSourceTest, RejectsEachInvalidCorpusLineForItsReason) {
  // All of them in one file: nothing decodes, and the reasons add up.
  std::string contents;
  std::map<std::string, int64_t> expected;
  for (const auto &c : InvalidEvents()) {
    absl::StrAppend(&contents, c.json, "\n");
    ++expected[std::string(MalformedReasonName(c.reason))];
  }
  auto all = FileEventSource::Open(WriteFile("invalid.jsonl", contents), CorpusFileOptions());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)->size(), 0);
  EXPECT_EQ((*all)->stats().malformed, static_cast<int64_t>(InvalidEvents().size()));
  const auto by_reason = (*all)->malformed_by_reason();
  const std::map<std::string, int64_t> reasons(by_reason.begin(), by_reason.end());
  EXPECT_EQ(reasons, expected);
  // Each on its own, between two valid lines: exactly its reason, and the valid
  // lines survive.
  for (size_t i = 0; i < InvalidEvents().size(); ++i) {
    const auto &c = InvalidEvents()[i];
    const std::string path =
        WriteFile(absl::StrCat("invalid", i, ".jsonl"),
                  absl::StrCat(R"({"user":"a","item":"b","ts":1})", "\n", c.json, "\n",
                               R"({"user":"c","item":"d","ts":2})", "\n"));
    auto source = FileEventSource::Open(path, CorpusFileOptions());
    ASSERT_TRUE(source.ok()) << source.status();
    EXPECT_EQ((*source)->size(), 2) << c.json;
    const auto reasons = (*source)->malformed_by_reason();
    ASSERT_EQ(reasons.size(), 1u) << c.json;
    EXPECT_EQ(reasons.begin()->first, std::string(MalformedReasonName(c.reason))) << c.json;
    ::unlink(path.c_str());
  }
}

TEST(EventCodecFileSourceTest, ReadsWhatTheCodecEncodes) {
  EventCodec codec(CorpusCodecOptions());
  std::string contents;
  std::vector<Event> decoded;
  for (const auto &c : ValidEvents()) {
    ASSERT_FALSE(codec.Decode(c.json, kDefaultTsMs, &decoded.emplace_back()).has_value());
    EventCodec::Encode(decoded.back(), &contents);
    contents.push_back('\n');
  }
  auto source = FileEventSource::Open(WriteFile("encoded.jsonl", contents), CorpusFileOptions());
  ASSERT_TRUE(source.ok()) << source.status();
  const std::vector<Event> events = ReadAll(**source);
  ASSERT_EQ(events.size(), decoded.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(SameEvent(events[i], decoded[i])) << ValidEvents()[i].json;
  }
}

// `freshet generate` writes what the codec and the file source read back as the
// stream's events, fractional weights included.
TEST(EventCodecGeneratorTest, GeneratedLinesDecodeToTheStreamsEvents) {
  SyntheticStreamOptions options;
  options.events = 5000;
  options.users = 50;
  options.items = 200;
  options.event_types = {{"view", 0.5, 1.0f}, {"like", 0.3, 0.1f}, {"odd", 0.2, 1.2345678f}};
  const std::string path = TempPath("generated.jsonl");
  ASSERT_TRUE(WriteSyntheticStream(options, path).ok());

  auto created = SyntheticStream::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::vector<Event> expected(options.events);
  for (Event &e : expected) created->Next(&e);

  const std::string text = ReadFile(path);
  EventCodec codec(CorpusCodecOptions());
  size_t line_start = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const size_t line_end = text.find('\n', line_start);
    ASSERT_NE(line_end, std::string::npos) << "line " << i + 1;
    const absl::string_view line(text.data() + line_start, line_end - line_start);
    line_start = line_end + 1;
    Event event;
    ASSERT_FALSE(codec.Decode(line, 0, &event).has_value()) << line;
    ASSERT_TRUE(SameEvent(event, expected[i])) << line;
  }
  EXPECT_EQ(line_start, text.size());

  auto source = FileEventSource::Open(path, CorpusFileOptions());
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->stats().malformed, 0);
  const std::vector<Event> events = ReadAll(**source);
  ASSERT_EQ(events.size(), expected.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_TRUE(SameEvent(events[i], expected[i])) << "event " << i;
  }
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace freshet::stream
