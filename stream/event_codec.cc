#include "stream/event_codec.h"

#include <charconv>
#include <cmath>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/json_writer.h"
#include "simdjson.h"
#include "stream/internal/numbers.h"

namespace freshet::stream {
namespace {

namespace od = simdjson::ondemand;
using internal::MalformedReason;
using internal::ParsedLine;

static_assert(simdjson::SIMDJSON_PADDING <= internal::kLinePadding,
              "callers must pad lines by at least simdjson's padding");

// How reading one field went. kInvalid is a JSON syntax error; kBad a well-formed value of the
// wrong kind, reported with the field's own reason.
enum class FieldResult { kOk, kAbsent, kBad, kInvalid };

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// True for "0", "42", "-7": the canonical JSON text of an integer (no leading zeros).
bool IsIntegerText(absl::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  if (text.empty() || (text.size() > 1 && text.front() == '0')) return false;
  for (const char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

FieldResult CheckNull(od::value& value) {
  bool is_null = false;
  if (value.is_null().get(is_null) || !is_null) return FieldResult::kInvalid;
  return FieldResult::kAbsent;
}

// An id is a string, or an integer kept exactly as written (the decimal text).
FieldResult ReadId(od::value& value, absl::string_view* id) {
  od::json_type type;
  if (value.type().get(type)) return FieldResult::kInvalid;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      if (value.get_string().get(s)) return FieldResult::kInvalid;
      *id = ToAbsl(s);
      return FieldResult::kOk;
    }
    case od::json_type::number: {
      // The raw token runs up to the next structural character, so it may end in spaces.
      const absl::string_view raw =
          absl::StripTrailingAsciiWhitespace(ToAbsl(value.raw_json_token()));
      if (!IsIntegerText(raw)) return FieldResult::kBad;
      *id = raw;
      return FieldResult::kOk;
    }
    case od::json_type::null:
      return CheckNull(value);
    default:
      return FieldResult::kBad;
  }
}

FieldResult ReadType(od::value& value, absl::string_view* type_name) {
  od::json_type type;
  if (value.type().get(type)) return FieldResult::kInvalid;
  if (type == od::json_type::null) return CheckNull(value);
  if (type != od::json_type::string) return FieldResult::kBad;
  std::string_view s;
  if (value.get_string().get(s)) return FieldResult::kInvalid;
  *type_name = ToAbsl(s);
  return FieldResult::kOk;
}

// A number, or a string holding one (producers that fear JavaScript's 53-bit integers quote
// 64-bit timestamps). An empty string counts as absent, like an empty csv field.
FieldResult ReadTimestamp(od::value& value, TimestampUnit unit, int64_t* ms) {
  od::json_type type;
  if (value.type().get(type)) return FieldResult::kInvalid;
  switch (type) {
    case od::json_type::number: {
      od::number number;
      if (value.get_number().get(number)) return FieldResult::kBad;
      bool ok = false;
      if (number.is_int64()) {
        ok = internal::IntegerTimestampToMs(number.get_int64(), unit, ms);
      } else if (number.is_double()) {
        ok = internal::FloatTimestampToMs(number.get_double(), unit, ms);
      }  // else: an unsigned integer beyond int64, far outside any epoch
      return ok ? FieldResult::kOk : FieldResult::kBad;
    }
    case od::json_type::string: {
      std::string_view s;
      if (value.get_string().get(s)) return FieldResult::kInvalid;
      if (s.empty()) return FieldResult::kAbsent;
      return internal::ParseTimestamp(ToAbsl(s), unit, ms) ? FieldResult::kOk : FieldResult::kBad;
    }
    case od::json_type::null:
      return CheckNull(value);
    default:
      return FieldResult::kBad;
  }
}

FieldResult ReadWeight(od::value& value, float* weight) {
  od::json_type type;
  if (value.type().get(type)) return FieldResult::kInvalid;
  switch (type) {
    case od::json_type::number: {
      double d = 0;
      if (value.get_double().get(d)) return FieldResult::kBad;
      return internal::CheckWeight(d, weight) ? FieldResult::kOk : FieldResult::kBad;
    }
    case od::json_type::string: {
      std::string_view s;
      if (value.get_string().get(s)) return FieldResult::kInvalid;
      if (s.empty()) return FieldResult::kAbsent;
      return internal::ParseWeight(ToAbsl(s), weight) ? FieldResult::kOk : FieldResult::kBad;
    }
    case od::json_type::null:
      return CheckNull(value);
    default:
      return FieldResult::kBad;
  }
}

// Ids and types are nearly always printable ASCII without quotes: copy those, escape the rest.
void AppendString(absl::string_view s, std::string* out) {
  for (const char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out->append(JsonWriter::Quote(s));
      return;
    }
  }
  out->push_back('"');
  out->append(s.data(), s.size());
  out->push_back('"');
}

// The shortest decimal that reads back as `weight`. The decoder reads a double and checks and
// narrows it (CheckWeight), which for a few values (FLT_MAX, whose shortest decimal is above it as
// a double) does not give back the float whose shortest decimal it was; those are written as the
// double's shortest decimal, which is exact.
void AppendWeight(float weight, std::string* out) {
  if (!std::isfinite(weight)) {
    out->append(std::isnan(weight) ? "\"nan\"" : weight > 0 ? "\"inf\"" : "\"-inf\"");
    return;
  }
  // Whole weights (the common case: 1, 2, 8) need neither.
  if (weight >= 0 && weight <= 1e6f && weight == std::floor(weight)) {
    absl::StrAppend(out, static_cast<int32_t>(weight));
    return;
  }
  char buf[64];
  char* end = std::to_chars(buf, buf + sizeof(buf), weight).ptr;
  double back = 0;
  float narrowed = 0;
  if (std::from_chars(buf, end, back).ec != std::errc() ||
      !internal::CheckWeight(back, &narrowed) || narrowed != weight) {
    end = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(weight)).ptr;
  }
  out->append(buf, end);
}

}  // namespace

struct EventCodec::Parser {
  od::parser parser;
};

EventCodec::EventCodec(EventCodecOptions options)
    : options_(std::move(options)), parser_(std::make_unique<Parser>()) {}

EventCodec::~EventCodec() = default;
EventCodec::EventCodec(EventCodec&&) noexcept = default;

std::optional<MalformedReason> EventCodec::Decode(absl::string_view json, int64_t default_ts_ms,
                                                  Event* out) {
  // The parser reads up to kLinePadding bytes past the end: decode from a padded copy.
  padded_.assign(json.data(), json.size());
  padded_.append(internal::kLinePadding, '\0');
  ParsedLine parsed;
  if (auto bad = Parse(absl::string_view(padded_.data(), json.size()), &parsed)) return bad;
  ResolvedEvent event;
  if (auto bad = Resolve(
          parsed, default_ts_ms, [this](absl::string_view type) { return TypeWeight(type); },
          &event)) {
    return bad;
  }
  out->user.assign(event.user.data(), event.user.size());
  out->item.assign(event.item.data(), event.item.size());
  out->type.assign(event.type.data(), event.type.size());
  out->weight = event.weight;
  out->ts_ms = event.ts_ms;
  out->id.assign(event.id.data(), event.id.size());
  return std::nullopt;
}

std::optional<MalformedReason> EventCodec::Parse(absl::string_view json, ParsedLine* out) {
  *out = ParsedLine();
  od::document doc;
  if (parser_->parser.iterate(json.data(), json.size(), json.size() + simdjson::SIMDJSON_PADDING)
          .get(doc)) {
    return MalformedReason::kInvalidJson;
  }
  od::object object;
  if (doc.get_object().get(object)) return MalformedReason::kInvalidJson;

  for (auto maybe_field : object) {
    od::field field;
    if (std::move(maybe_field).get(field)) return MalformedReason::kInvalidJson;
    std::string_view key;
    if (field.unescaped_key().get(key)) return MalformedReason::kInvalidJson;
    od::value& value = field.value();

    // Fields freshet does not use are skipped by the iterator without being decoded.
    FieldResult result = FieldResult::kOk;
    MalformedReason bad = MalformedReason::kInvalidJson;
    if (key == "user") {
      result = ReadId(value, &out->user);
      out->has_user = result == FieldResult::kOk;
      bad = MalformedReason::kBadUser;
    } else if (key == "item") {
      result = ReadId(value, &out->item);
      out->has_item = result == FieldResult::kOk;
      bad = MalformedReason::kBadItem;
    } else if (key == "type") {
      out->type = {};
      result = ReadType(value, &out->type);
      bad = MalformedReason::kBadType;
    } else if (key == "ts") {
      result = ReadTimestamp(value, options_.ts_unit, &out->ts_ms);
      out->has_ts = result == FieldResult::kOk;
      bad = MalformedReason::kBadTimestamp;
    } else if (key == "weight") {
      result = ReadWeight(value, &out->weight);
      out->has_weight = result == FieldResult::kOk;
      bad = MalformedReason::kBadWeight;
    } else if (key == "id") {
      out->id = {};
      result = ReadId(value, &out->id);
      bad = MalformedReason::kBadEventId;
    }
    if (result == FieldResult::kInvalid) return MalformedReason::kInvalidJson;
    if (result == FieldResult::kBad) return bad;
  }
  // Anything after the closing brace ("{...} x", two objects on one line) is a syntax error that
  // On-Demand does not report by itself.
  const char* location = nullptr;
  if (doc.current_location().get(location) != simdjson::OUT_OF_BOUNDS) {
    return MalformedReason::kInvalidJson;
  }
  return std::nullopt;
}

std::optional<MalformedReason> EventCodec::Resolve(
    const ParsedLine& fields, int64_t default_ts_ms,
    absl::FunctionRef<float(absl::string_view type)> type_weight, ResolvedEvent* out) const {
  if (!fields.has_user) return MalformedReason::kMissingUser;
  if (!fields.has_item) return MalformedReason::kMissingItem;
  if (fields.user.empty()) return MalformedReason::kEmptyUser;
  if (fields.item.empty()) return MalformedReason::kEmptyItem;
  out->user = fields.user;
  out->item = fields.item;
  out->type = fields.type.empty() ? absl::string_view(options_.default_type) : fields.type;
  out->id = fields.id;
  // Ids first: a source may intern the type when it is asked for its weight.
  if (auto bad = CheckIds(out->user, out->item, out->type, options_.limits)) return bad;
  if (auto bad = CheckEventId(out->id, options_.limits)) return bad;
  out->weight = fields.has_weight ? fields.weight : type_weight(out->type);
  out->ts_ms = fields.has_ts ? fields.ts_ms : default_ts_ms;
  return CheckNumbers(out->ts_ms, out->weight, options_.limits);
}

float EventCodec::TypeWeight(absl::string_view type) const {
  const auto it = options_.type_weights.find(type);
  return it != options_.type_weights.end() ? it->second : options_.default_weight;
}

void EventCodec::Encode(const Event& event, std::string* out) {
  out->append("{\"user\":");
  AppendString(event.user, out);
  out->append(",\"item\":");
  AppendString(event.item, out);
  if (!event.type.empty()) {
    out->append(",\"type\":");
    AppendString(event.type, out);
  }
  absl::StrAppend(out, ",\"ts\":", event.ts_ms, ",\"weight\":");
  AppendWeight(event.weight, out);
  if (!event.id.empty()) {
    out->append(",\"id\":");
    AppendString(event.id, out);
  }
  out->push_back('}');
}

}  // namespace freshet::stream
