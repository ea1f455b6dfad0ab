// Fuzz target: JSON output (common/json_writer.h). For arbitrary bytes:
//   - IsValidUtf8 agrees with simdjson's UTF-8 validator;
//   - JsonWriter::Quote / String() produce valid UTF-8 that simdjson's DOM parser reads back as a
//     string equal to the input when the input is valid UTF-8, and otherwise equal to the input
//     with each byte that starts no valid sequence replaced by U+FFFD;
//   - the same holds for keys and values inside an object and an array, next to Int/Bool/Null;
//   - Double() writes a JSON number that reads back as the same double (null when not finite);
//     Float() one that reads back as the same float.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/json_writer.h"
#include "common/utf8.h"
#include "simdjson.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet {
namespace {

std::string Hex(absl::string_view s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }
std::string HexStd(std::string_view s) { return Hex(absl::string_view(s.data(), s.size())); }

// What Quote promises to encode: `in`, with every byte that does not start a valid UTF-8 sequence
// replaced by U+FFFD.
std::string Sanitized(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size();) {
    const size_t n = Utf8SequenceLength(in.substr(i));
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(in.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

simdjson::dom::parser& Parser() {
  static simdjson::dom::parser* parser = new simdjson::dom::parser();
  return *parser;
}

// JSON number grammar (RFC 8259): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(absl::string_view s) {
  size_t i = 0;
  const auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

void CheckParsesAsString(absl::string_view json, absl::string_view expected,
                         absl::string_view input) {
  simdjson::padded_string padded(ToStd(json));
  std::string_view parsed;
  const simdjson::error_code error = Parser().parse(padded).get_string().get(parsed);
  FUZZ_CHECK(error == simdjson::SUCCESS,
             absl::StrCat("simdjson cannot read ", Hex(json), " (", simdjson::error_message(error),
                          ") written for ", Hex(input)));
  FUZZ_CHECK(parsed == ToStd(expected), absl::StrCat("wrote ", Hex(json), " for ", Hex(input),
                                                     ", which reads back as ", HexStd(parsed)));
}

}  // namespace
}  // namespace freshet

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet;
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  const bool valid = IsValidUtf8(in);
  FUZZ_CHECK(valid == simdjson::validate_utf8(in.data(), in.size()),
             absl::StrCat("IsValidUtf8(", Hex(in), ") = ", valid, ", simdjson disagrees"));
  const std::string expected = Sanitized(in);
  FUZZ_CHECK(IsValidUtf8(expected), Hex(expected));
  if (valid) FUZZ_CHECK(expected == in, Hex(in));

  // Quote(), which String() and Key() use.
  const std::string quoted = JsonWriter::Quote(in);
  FUZZ_CHECK(IsValidUtf8(quoted), absl::StrCat("Quote(", Hex(in), ") = ", Hex(quoted)));
  for (const char c : quoted) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20,
               absl::StrCat("raw control byte in ", Hex(quoted)));
  }
  CheckParsesAsString(quoted, expected, in);
  CheckParsesAsString(JsonWriter().String(in).str(), expected, in);

  // In a document: {in: in, "n": int, "list": [in, true, null], "empty": {}}.
  int64_t n = 0;
  std::memcpy(&n, data, std::min(size, sizeof(n)));
  JsonWriter w;
  w.BeginObject()
      .Key(in)
      .String(in)
      .Key("n")
      .Int(n)
      .Key("list")
      .BeginArray()
      .String(in)
      .Bool(true)
      .Null()
      .EndArray()
      .Key("empty")
      .BeginObject()
      .EndObject()
      .EndObject();
  const std::string& doc = w.str();
  FUZZ_CHECK(IsValidUtf8(doc), Hex(doc));
  simdjson::padded_string padded(doc);
  simdjson::dom::object object;
  const simdjson::error_code error = Parser().parse(padded).get_object().get(object);
  FUZZ_CHECK(error == simdjson::SUCCESS, absl::StrCat("simdjson cannot read ", Hex(doc), " (",
                                                      simdjson::error_message(error), ")"));
  int field = 0;
  for (const simdjson::dom::key_value_pair kv : object) {
    switch (field++) {
      case 0: {
        FUZZ_CHECK(kv.key == std::string_view(expected), Hex(doc));
        std::string_view s;
        FUZZ_CHECK(kv.value.get_string().get(s) == simdjson::SUCCESS && s == expected, Hex(doc));
        break;
      }
      case 1: {
        int64_t parsed_n = 0;
        FUZZ_CHECK(kv.key == "n" && kv.value.get_int64().get(parsed_n) == simdjson::SUCCESS &&
                       parsed_n == n,
                   Hex(doc));
        break;
      }
      case 2: {
        simdjson::dom::array list;
        FUZZ_CHECK(kv.key == "list" && kv.value.get_array().get(list) == simdjson::SUCCESS &&
                       list.size() == 3,
                   Hex(doc));
        std::string_view s;
        FUZZ_CHECK(list.at(0).get_string().get(s) == simdjson::SUCCESS && s == expected, Hex(doc));
        FUZZ_CHECK(list.at(1).is_bool() && list.at(2).is_null(), Hex(doc));
        break;
      }
      case 3: {
        simdjson::dom::object empty;
        FUZZ_CHECK(kv.key == "empty" && kv.value.get_object().get(empty) == simdjson::SUCCESS &&
                       empty.size() == 0,
                   Hex(doc));
        break;
      }
    }
  }
  FUZZ_CHECK(field == 4, Hex(doc));

  // Double(): the last 8 bytes as a double.
  double d = 0.5;
  if (size >= sizeof(d)) std::memcpy(&d, data + size - sizeof(d), sizeof(d));
  const std::string number = JsonWriter().Double(d).str();
  if (!std::isfinite(d)) {
    FUZZ_CHECK(number == "null", absl::StrCat(d, " -> ", number));
  } else {
    FUZZ_CHECK(IsJsonNumber(number), absl::StrCat("Double(", d, ") wrote ", Hex(number)));
    const double back = std::strtod(number.c_str(), nullptr);
    FUZZ_CHECK(back == d, absl::StrCat("Double(", absl::StrFormat("%a", d), ") wrote ", number,
                                       ", which reads back as ", absl::StrFormat("%a", back)));
  }

  // Float(): the last 4 bytes as a float.
  float f = 0.5f;
  if (size >= sizeof(f)) std::memcpy(&f, data + size - sizeof(f), sizeof(f));
  const std::string short_number = JsonWriter().Float(f).str();
  if (!std::isfinite(f)) {
    FUZZ_CHECK(short_number == "null", absl::StrCat(f, " -> ", short_number));
  } else {
    FUZZ_CHECK(IsJsonNumber(short_number),
               absl::StrCat("Float(", f, ") wrote ", Hex(short_number)));
    const float back = std::strtof(short_number.c_str(), nullptr);
    FUZZ_CHECK(back == f, absl::StrCat("Float(", absl::StrFormat("%a", f), ") wrote ", short_number,
                                       ", which reads back as ", absl::StrFormat("%a", back)));
  }
  return 0;
}
