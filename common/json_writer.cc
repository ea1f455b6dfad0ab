#include "common/json_writer.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace freshet {

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  out_ += '}';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  out_ += ']';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::Key(absl::string_view name) {
  Separate();
  AppendQuoted(name, &out_);
  out_ += ':';
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(absl::string_view value) {
  Separate();
  AppendQuoted(value, &out_);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  Separate();
  absl::StrAppend(&out_, value);
  return *this;
}

namespace {

// The shortest form that reads back as the same value of its type; null when not finite.
template <typename Number>
void AppendShortest(Number value, std::string* out) {
  if (!std::isfinite(value)) {
    *out += "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, end);
}

}  // namespace

JsonWriter& JsonWriter::Double(double value) {
  Separate();
  AppendShortest(value, &out_);
  return *this;
}

JsonWriter& JsonWriter::Float(float value) {
  Separate();
  AppendShortest(value, &out_);
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  Separate();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  Separate();
  out_ += "null";
  return *this;
}

std::string JsonWriter::Quote(absl::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  AppendQuoted(value, &out);
  return out;
}

void JsonWriter::AppendQuoted(absl::string_view value, std::string* out) {
  *out += '"';
  size_t i = 0;
  while (i < value.size()) {
    // A run of bytes that stand for themselves is appended at once (ids usually are one).
    size_t plain = i;
    while (plain < value.size()) {
      const unsigned char c = static_cast<unsigned char>(value[plain]);
      if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
      ++plain;
    }
    out->append(value.data() + i, plain - i);
    i = plain;
    if (i == value.size()) break;
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c >= 0x80) {
      // Valid sequences are copied; any other byte becomes U+FFFD, so the output is always
      // valid UTF-8 (and so valid JSON) whatever bytes an id or a message carries.
      const size_t n = Utf8SequenceLength(value.substr(i));
      if (n == 0) {
        *out += "\\ufffd";
        ++i;
      } else {
        out->append(value.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default: {  // another control character
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        *out += buf;
      }
    }
    ++i;
  }
  *out += '"';
}

}  // namespace freshet
