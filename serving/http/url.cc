#include "serving/http/url.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace freshet::serving {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::string> UrlDecode(absl::string_view text, UrlDecodeMode mode) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (text.size() - i < 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad percent-escape at the end of '", text, "'"));
      }
      const int h = HexValue(text[i + 1]);
      const int l = HexValue(text[i + 2]);
      if (h < 0 || l < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad percent-escape '", text.substr(i, 3), "' in '", text, "'"));
      }
      const char decoded = static_cast<char>(h * 16 + l);
      if (decoded == '\0') {
        return absl::InvalidArgumentError(absl::StrCat("%00 is not allowed in '", text, "'"));
      }
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && mode == UrlDecodeMode::kQuery) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseQueryString(
    absl::string_view query) {
  absl::flat_hash_map<std::string, std::string> result;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const absl::string_view piece = query.substr(0, amp);
    query = amp == absl::string_view::npos ? absl::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    absl::StatusOr<std::string> key = UrlDecode(piece.substr(0, eq), UrlDecodeMode::kQuery);
    if (!key.ok()) return key.status();
    std::string value;
    if (eq != absl::string_view::npos) {
      absl::StatusOr<std::string> v = UrlDecode(piece.substr(eq + 1), UrlDecodeMode::kQuery);
      if (!v.ok()) return v.status();
      value = std::move(*v);
    }
    result.emplace(std::move(*key), std::move(value));
  }
  return result;
}

void SplitTarget(absl::string_view target, absl::string_view* path, absl::string_view* query) {
  const size_t q = target.find('?');
  if (q == absl::string_view::npos) {
    *path = target;
    *query = absl::string_view();
  } else {
    *path = target.substr(0, q);
    *query = target.substr(q + 1);
  }
}

}  // namespace freshet::serving
