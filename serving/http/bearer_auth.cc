#include "serving/http/bearer_auth.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace freshet::serving {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walk the expected length whatever the input; a length mismatch is folded into the result.
  uint8_t diff = a.size() == b.size() ? 0 : 1;
  const size_t n = b.size();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t x = i < a.size() ? static_cast<uint8_t>(a[i]) : 0;
    diff |= static_cast<uint8_t>(x ^ static_cast<uint8_t>(b[i]));
  }
  // Keep the compiler from turning the loop into an early-exit comparison.
  volatile uint8_t result = diff;
  return result == 0;
}

bool HasBearerToken(const HttpRequest& request, absl::string_view expected_token) {
  if (expected_token.empty()) return false;
  const std::string* header = request.Header("Authorization");
  if (header == nullptr) return false;
  absl::string_view value = absl::StripAsciiWhitespace(*header);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  value = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  return ConstantTimeEquals(value, expected_token);
}

std::optional<HttpResponse> CheckBearerToken(const HttpRequest& request,
                                             absl::string_view expected_token) {
  if (expected_token.empty()) {
    return ErrorResponse(403, "admin API disabled: no admin token is configured");
  }
  if (HasBearerToken(request, expected_token)) return std::nullopt;
  HttpResponse response = ErrorResponse(401, "missing or wrong bearer token");
  response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

}  // namespace freshet::serving
