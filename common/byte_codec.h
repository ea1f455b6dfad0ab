// Little-endian binary encoding of persisted rows: ByteWriter appends fixed-width integers,
// floats, varints and length-prefixed strings to a std::string; ByteReader reads them back with
// bounds checks, so a short or corrupt value is detected (ok() turns false) instead of read past.
// The layout is the host's (x86-64 and AArch64 are both little-endian); every persisted value
// starts with a format version byte written by its owner.
#ifndef FRESHET_COMMON_BYTE_CODEC_H_
#define FRESHET_COMMON_BYTE_CODEC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace freshet {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  template <typename T>
  void Put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_->append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void PutString(absl::string_view s) {
    PutVarint(s.size());
    out_->append(s.data(), s.size());
  }
  // A length-prefixed array of trivially copyable values.
  template <typename T>
  void PutArray(absl::Span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    PutVarint(values.size());
    out_->append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  }
  // `n` values without a length prefix (the reader knows n, e.g. the embedding dimension).
  template <typename T>
  void PutRaw(const T* values, size_t n) {
    out_->append(reinterpret_cast<const char*>(values), n * sizeof(T));
  }

 private:
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : in_(in) {}

  // False once any read ran past the end or met a malformed varint; every later read fails too.
  bool ok() const { return ok_; }
  // True when everything was read and nothing is left over.
  bool done() const { return ok_ && in_.empty(); }

  template <typename T>
  bool Get(T* value) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (!Take(sizeof(T))) return false;
    std::memcpy(value, taken_, sizeof(T));
    return true;
  }
  bool GetVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Take(1)) return false;
      const uint8_t byte = static_cast<uint8_t>(*taken_);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return ok_ = false;
  }
  bool GetString(std::string* s) {
    uint64_t n = 0;
    if (!GetVarint(&n) || !Take(n)) return false;
    s->assign(taken_, n);
    return true;
  }
  bool GetStringView(absl::string_view* s) {
    uint64_t n = 0;
    if (!GetVarint(&n) || !Take(n)) return false;
    *s = absl::string_view(taken_, n);
    return true;
  }
  // A length-prefixed array; `max_count` bounds the length so corrupt input cannot ask for a huge
  // allocation.
  template <typename T, typename Vec>
  bool GetArray(Vec* values, uint64_t max_count) {
    uint64_t n = 0;
    if (!GetVarint(&n)) return false;
    if (n > max_count || !Take(n * sizeof(T))) return ok_ = false;
    values->resize(n);
    if (n > 0) std::memcpy(values->data(), taken_, n * sizeof(T));
    return true;
  }
  template <typename T>
  bool GetRaw(T* values, size_t n) {
    if (!Take(n * sizeof(T))) return false;
    if (n > 0) std::memcpy(values, taken_, n * sizeof(T));
    return true;
  }
  // Takes the next `n` bytes without copying them: *at points into the input.
  bool GetBytes(uint64_t n, const char** at) {
    if (!Take(n)) return false;
    *at = taken_;
    return true;
  }

 private:
  bool Take(uint64_t n) {
    if (!ok_ || n > in_.size()) return ok_ = false;
    taken_ = in_.data();
    in_.remove_prefix(n);
    return true;
  }

  absl::string_view in_;
  const char* taken_ = nullptr;
  bool ok_ = true;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_BYTE_CODEC_H_
