// EventCodec::Encode: the exact text of DESIGN.md "Events", escaping, and round trips of the
// strings, weights and timestamps an Event can hold.
#include "stream/event_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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

namespace freshet::stream {
namespace {

using internal::MalformedReason;
using internal::MalformedReasonName;

// Every field but the position.
bool SameEvent(const Event& a, const Event& b) {
  return a.user == b.user && a.item == b.item && a.type == b.type && a.weight == b.weight &&
         a.ts_ms == b.ts_ms && a.id == b.id;
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

// Moved from the Kafka producer's tests: the exact text of DESIGN.md "Events".
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

// Strings that need escaping, and the weights and timestamps a float and an int64 can hold.
TEST(EventCodecTest, AwkwardStringsWeightsAndTimestampsRoundTrip) {
  EventCodecOptions options;
  options.limits.max_weight = std::numeric_limits<float>::max();
  EventCodec codec(options);
  const auto round_trip = [&](const Event& event) {
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
  for (const std::string& s :
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

// An event that decoding would reject still encodes as valid JSON, which decoding rejects.
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

}  // namespace
}  // namespace freshet::stream
