// The event corpus: JSON events every way in must treat alike (EventCodec, a jsonl file, a Kafka
// message, POST /v1/events), each valid one with the Event it decodes to, each invalid one with
// the reason it is rejected for. Decoded with CorpusCodecOptions() (or the same settings in the
// entry point's own options).
//
// Every case is one line without a line break, neither blank nor an array (POST /v1/events reads
// an array as a batch of events) nor a whole-line Kafka message without a key (no case relies on
// a key): the same bytes are a jsonl line, a Kafka message value and a POST body.
#ifndef FRESHET_TESTS_STREAM_EVENT_CORPUS_H_
#define FRESHET_TESTS_STREAM_EVENT_CORPUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "stream/event.h"
#include "stream/event_codec.h"
#include "stream/internal/line_parser.h"

namespace freshet::stream::testing {

// "heavy" weighs more than max_weight: an event of that type without a weight of its own is
// rejected. "free" weighs 0, which is allowed. No default type (POST /v1/events has none).
inline EventCodecOptions CorpusCodecOptions() {
  EventCodecOptions options;
  options.type_weights = {{"click", 2.0f}, {"purchase", 8.0f}, {"free", 0.0f}, {"heavy", 1000.0f}};
  options.default_weight = 1.0f;
  options.limits.max_weight = 100.0f;
  options.limits.max_id_bytes = 256;
  return options;
}

struct ValidEventCase {
  std::string json;
  std::string user;
  std::string item;
  std::string type;
  float weight = 1.0f;
  std::optional<int64_t> ts_ms;  // nullopt: the event has no ts and gets the entry point's default
  std::string id;
};

inline ValidEventCase Valid(std::string json, std::string user, std::string item, std::string type,
                            float weight, std::optional<int64_t> ts_ms, std::string id = "") {
  return ValidEventCase{std::move(json), std::move(user), std::move(item), std::move(type),
                        weight,          ts_ms,           std::move(id)};
}

struct InvalidEventCase {
  std::string json;
  internal::MalformedReason reason;
};

inline const std::vector<ValidEventCase>& ValidEvents() {
  constexpr int64_t kTs = 1'700'000'000'000;
  static const auto* const cases = new std::vector<ValidEventCase>{
      // The example of ARCHITECTURE.md, "Event format": the explicit weight wins over click's 2.
      Valid(R"({"user":"u42","item":"sku-9","type":"click","ts":1700000000123,"weight":1.0})",
            "u42", "sku-9", "click", 1.0f, 1700000000123),
      // Weights by type: configured, unknown (default), none (default).
      Valid(R"({"user":"u1","item":"i1","type":"click","ts":1700000000000})", "u1", "i1", "click",
            2.0f, kTs),
      Valid(R"({"user":"u1","item":"i1","type":"purchase","ts":1700000000001})", "u1", "i1",
            "purchase", 8.0f, kTs + 1),
      Valid(R"({"user":"u1","item":"i2","type":"unknown-type","ts":1700000000002})", "u1", "i2",
            "unknown-type", 1.0f, kTs + 2),
      Valid(R"({"user":"u1","item":"i3","ts":1700000000003})", "u1", "i3", "", 1.0f, kTs + 3),
      Valid(R"({"user":"u1","item":"i4","type":"free","ts":1700000000004})", "u1", "i4", "free",
            0.0f, kTs + 4),
      Valid(R"({"user":"u1","item":"i5","type":"heavy","weight":3,"ts":1700000000005})", "u1", "i5",
            "heavy", 3.0f, kTs + 5),
      // Integer ids keep their decimal text, exactly as written.
      Valid(R"({"user":7,"item":12,"ts":1700000000006})", "7", "12", "", 1.0f, kTs + 6),
      Valid(R"({"user":-3,"item":0,"ts":1700000000007})", "-3", "0", "", 1.0f, kTs + 7),
      Valid(R"({"user":-0,"item":1,"ts":1700000000008})", "-0", "1", "", 1.0f, kTs + 8),
      Valid(R"({"user":99999999999999999999,"item":"big","ts":1700000000009})",
            "99999999999999999999", "big", "", 1.0f, kTs + 9),
      // Timestamps: quoted, fractional (to the nearest millisecond), with an exponent, in ms even
      // when small, at both ends of the accepted range.
      Valid(R"({"user":"u2","item":"i1","ts":"1700000000123"})", "u2", "i1", "", 1.0f,
            1700000000123),
      Valid(R"({"user":"u2","item":"i2","ts":1700000000123.6})", "u2", "i2", "", 1.0f,
            1700000000124),
      Valid(R"({"user":"u2","item":"i3","ts":"1700000000123.4"})", "u2", "i3", "", 1.0f,
            1700000000123),
      Valid(R"({"user":"u2","item":"i4","ts":1.7e12})", "u2", "i4", "", 1.0f, kTs),
      Valid(R"({"user":"u2","item":"i5","ts":1700000000})", "u2", "i5", "", 1.0f, 1700000000),
      Valid(R"({"user":"u2","item":"i6","ts":0,"weight":0})", "u2", "i6", "", 0.0f, 0),
      Valid(R"({"user":"u2","item":"i7","ts":4102444799999,"weight":100})", "u2", "i7", "", 100.0f,
            4102444799999),
      // Weights: a string, an exponent, a fraction, negative zero, a type's weight overruled.
      Valid(R"({"user":"u3","item":"i1","weight":"2.5","ts":1700000000010})", "u3", "i1", "", 2.5f,
            kTs + 10),
      Valid(R"({"user":"u3","item":"i2","weight":"1e1","ts":1700000000011})", "u3", "i2", "", 10.0f,
            kTs + 11),
      Valid(R"({"user":"u3","item":"i3","weight":1E1,"ts":1700000000012})", "u3", "i3", "", 10.0f,
            kTs + 12),
      Valid(R"({"user":"u3","item":"i4","weight":0.1,"ts":1700000000013})", "u3", "i4", "", 0.1f,
            kTs + 13),
      Valid(R"({"user":"u3","item":"i5","weight":-0.0,"ts":1700000000014})", "u3", "i5", "", 0.0f,
            kTs + 14),
      Valid(R"({"user":"u3","item":"i6","type":"purchase","weight":"0.5","ts":1700000000015})",
            "u3", "i6", "purchase", 0.5f, kTs + 15),
      // null and "" are absent: the type's weight, the default ts.
      Valid(R"({"user":"u4","item":"i1","type":null,"weight":null,"ts":1700000000016})", "u4", "i1",
            "", 1.0f, kTs + 16),
      Valid(R"({"user":"u4","item":"i2","type":"","ts":1700000000017})", "u4", "i2", "", 1.0f,
            kTs + 17),
      Valid(R"({"user":"u4","item":"i3","type":"click","weight":""})", "u4", "i3", "click", 2.0f,
            std::nullopt),
      Valid(R"({"user":"u4","item":"i4","ts":null})", "u4", "i4", "", 1.0f, std::nullopt),
      Valid(R"({"user":"u4","item":"i5","ts":""})", "u4", "i5", "", 1.0f, std::nullopt),
      Valid(R"({"user":"u4","item":"i6"})", "u4", "i6", "", 1.0f, std::nullopt),
      // Event ids: a string, an integer, null and "" (none).
      Valid(R"({"user":"u5","item":"i1","ts":1700000000018,"id":"order-17/0"})", "u5", "i1", "",
            1.0f, kTs + 18, "order-17/0"),
      Valid(R"({"user":"u5","item":"i2","ts":1700000000019,"id":42})", "u5", "i2", "", 1.0f,
            kTs + 19, "42"),
      Valid(R"({"user":"u5","item":"i3","ts":1700000000020,"id":null})", "u5", "i3", "", 1.0f,
            kTs + 20),
      Valid(R"({"user":"u5","item":"i4","ts":1700000000021,"id":""})", "u5", "i4", "", 1.0f,
            kTs + 21),
      // Strings: escapes, escaped and raw UTF-8, a surrogate pair.
      Valid(R"({"user":"u\"q\\b\/s","item":"\u00e9t\u00e9","type":"tab\there","ts":1700000000022})",
            "u\"q\\b/s", "\xc3\xa9t\xc3\xa9", "tab\there", 1.0f, kTs + 22),
      Valid("{\"user\":\"\\ud83d\\ude00\",\"item\":\"\xf0\x9f\x98\x80\",\"ts\":1700000000023}",
            "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", "", 1.0f, kTs + 23),
      Valid(
          "{\"user\":\"\xe7\x94\xa8\xe6\x88\xb7\",\"item\":\"\xe7\x89\xa9\",\"ts\":1700000000024}",
          "\xe7\x94\xa8\xe6\x88\xb7", "\xe7\x89\xa9", "", 1.0f, kTs + 24),
      // Other keys are skipped, a repeated key counts last, any order, any whitespace.
      Valid(R"({"x":{"y":[1,{"z":null}]},"user":"u6","item":"i1","ts":1700000000025,"w":true})",
            "u6", "i1", "", 1.0f, kTs + 25),
      Valid(R"({"user":"first","user":"u6","item":"i2","ts":1,"ts":1700000000026})", "u6", "i2", "",
            1.0f, kTs + 26),
      Valid(R"({"ts":1700000000027,"weight":2,"type":"click","item":"i3","user":"u6"})", "u6", "i3",
            "click", 2.0f, kTs + 27),
      Valid(R"(  { "user" : "u6" , "item" : "i4" , "ts" : 1700000000028 }  )", "u6", "i4", "", 1.0f,
            kTs + 28),
      // Ids of exactly max_id_bytes.
      Valid(absl::StrCat(R"({"user":")", std::string(256, 'u'),
                         R"(","item":"i1","ts":1700000000029,)", R"("id":")", std::string(256, 'k'),
                         R"("})"),
            std::string(256, 'u'), "i1", "", 1.0f, kTs + 29, std::string(256, 'k')),
  };
  return *cases;
}

inline const std::vector<InvalidEventCase>& InvalidEvents() {
  using R = internal::MalformedReason;
  const std::string long_id(257, 'x');
  static const auto* const cases = new std::vector<InvalidEventCase>{
      // Not one JSON object.
      {"not json", R::kInvalidJson},
      {R"({"user":"u1","item":"i1")", R::kInvalidJson},
      {R"({"user":"u1","item":"i1"} x)", R::kInvalidJson},
      {R"({"user":"u1","item":"i1"}{"user":"u2","item":"i2"})", R::kInvalidJson},
      {R"("just a string")", R::kInvalidJson},
      {"42", R::kInvalidJson},
      {"{\"user\":\"u\xff\",\"item\":\"i1\",\"ts\":1700000000000}", R::kInvalidJson},
      // Missing and empty ids (missing first, then empty; user before item).
      {R"({"item":"i1","ts":1700000000000})", R::kMissingUser},
      {R"({"user":null,"item":"i1"})", R::kMissingUser},
      {R"({})", R::kMissingUser},
      {R"({"user":"u1"})", R::kMissingItem},
      {R"({"user":"u1","item":null})", R::kMissingItem},
      {R"({"user":"","ts":1})", R::kMissingItem},
      {R"({"user":"","item":"i1"})", R::kEmptyUser},
      {R"({"user":"","item":""})", R::kEmptyUser},
      {R"({"user":"u1","item":""})", R::kEmptyItem},
      // Values of the wrong kind, reported for the first such field.
      {R"({"user":1.5,"item":"i1"})", R::kBadUser},
      {R"({"user":1e3,"item":"i1"})", R::kBadUser},
      {R"({"user":007,"item":"i1"})", R::kBadUser},
      {R"({"user":true,"item":"i1"})", R::kBadUser},
      {R"({"user":["u1"],"item":"i1"})", R::kBadUser},
      {R"({"user":{"id":1},"item":"i1"})", R::kBadUser},
      {R"({"user":true,"item":false})", R::kBadUser},
      {R"({"item":false,"user":true})", R::kBadItem},
      {R"({"user":"u1","item":false})", R::kBadItem},
      {R"({"user":"u1","item":"i1","type":5})", R::kBadType},
      {R"({"user":"u1","item":"i1","type":["click"]})", R::kBadType},
      {R"({"weight":-1})", R::kBadWeight},
      // Timestamps outside [1970, 2100) or not numbers.
      {R"({"user":"u1","item":"i1","ts":"yesterday"})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":true})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":-5})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":4102444800000})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":9223372036854775807})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":18446744073709551615})", R::kBadTimestamp},
      {R"({"user":"u1","item":"i1","ts":1e300})", R::kBadTimestamp},
      // Weights: negative, above max_weight (explicit or the type's), not numbers.
      {R"({"user":"u1","item":"i1","weight":-1})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":101})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":1e20})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":1e300})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":"heavy"})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":"nan"})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":"inf"})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","weight":[1]})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","type":"heavy"})", R::kBadWeight},
      {R"({"user":"u1","item":"i1","ts":-5,"weight":101})", R::kBadWeight},
      // Event ids that are not strings or integers.
      {R"({"user":"u1","item":"i1","id":1.5})", R::kBadEventId},
      {R"({"user":"u1","item":"i1","id":{"a":1}})", R::kBadEventId},
      {R"({"user":"u1","item":"i1","id":true})", R::kBadEventId},
      // Ids above max_id_bytes; the event id is checked before the weight.
      {absl::StrCat(R"({"user":")", long_id, R"(","item":"i1"})"), R::kIdTooLong},
      {absl::StrCat(R"({"user":"u1","item":")", long_id, R"("})"), R::kIdTooLong},
      {absl::StrCat(R"({"user":"u1","item":"i1","type":")", long_id, R"("})"), R::kIdTooLong},
      {absl::StrCat(R"({"user":"u1","item":"i1","id":")", long_id, R"("})"), R::kIdTooLong},
      {absl::StrCat(R"({"user":"u1","item":"i1","weight":-1,"id":")", long_id, R"("})"),
       R::kBadWeight},
      {absl::StrCat(R"({"user":"u1","item":"i1","weight":101,"id":")", long_id, R"("})"),
       R::kIdTooLong},
  };
  return *cases;
}

// Whether `event` is what `c` decodes to, with `default_ts_ms` standing in for a missing ts.
inline ::testing::AssertionResult DecodedAs(const ValidEventCase& c, const Event& event,
                                            int64_t default_ts_ms) {
  const int64_t ts_ms = c.ts_ms.value_or(default_ts_ms);
  if (event.user == c.user && event.item == c.item && event.type == c.type &&
      event.weight == c.weight && event.ts_ms == ts_ms && event.id == c.id) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "case " << absl::CHexEscape(c.json) << "\n  decoded user=\""
         << absl::CHexEscape(event.user) << "\" item=\"" << absl::CHexEscape(event.item)
         << "\" type=\"" << absl::CHexEscape(event.type) << "\" weight=" << event.weight
         << " ts=" << event.ts_ms << " id=\"" << absl::CHexEscape(event.id)
         << "\"\n  expected user=\"" << absl::CHexEscape(c.user) << "\" item=\""
         << absl::CHexEscape(c.item) << "\" type=\"" << absl::CHexEscape(c.type)
         << "\" weight=" << c.weight << " ts=" << ts_ms << " id=\"" << absl::CHexEscape(c.id)
         << "\"";
}

// Every field but the position.
inline bool SameEvent(const Event& a, const Event& b) {
  return a.user == b.user && a.item == b.item && a.type == b.type && a.weight == b.weight &&
         a.ts_ms == b.ts_ms && a.id == b.id;
}

}  // namespace freshet::stream::testing

#endif  // FRESHET_TESTS_STREAM_EVENT_CORPUS_H_
