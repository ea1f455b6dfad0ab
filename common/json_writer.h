// JsonWriter: builds compact JSON text by appending to a string. For reports and API responses,
// where a DOM would only add copies. The caller is responsible for well-formed nesting.
#ifndef FRESHET_COMMON_JSON_WRITER_H_
#define FRESHET_COMMON_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace freshet {

// Not thread-safe.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Object member name; the next value call writes its value.
  JsonWriter& Key(absl::string_view name);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  // Non-finite numbers become null (JSON has no NaN or infinity).
  JsonWriter& Double(double value);
  // The shortest number that reads back (as a float) as `value`: 9 significant digits at most,
  // where Double(value) would write up to 17 for the same float.
  JsonWriter& Float(float value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // Sets aside room for `bytes` of output, for a caller that knows about how long it will be.
  void Reserve(size_t bytes) { out_.reserve(bytes); }

  const std::string& str() const { return out_; }

  // `value` as a JSON string literal, quotes included.
  static std::string Quote(absl::string_view value);
  // Quote(value) appended to *out.
  static void AppendQuoted(absl::string_view value, std::string* out);

 private:
  void Separate();
  std::string out_;
  std::vector<bool> first_;  // per open container: no member written yet
  bool after_key_ = false;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_JSON_WRITER_H_
