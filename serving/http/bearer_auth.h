// Bearer-token check for the /admin routes: "Authorization: Bearer <token>" compared with the
// configured token in constant time (the comparison does not stop at the first differing byte, so
// its duration does not reveal how much of a guess was right).
//
// Thread-safe: free functions without shared state.
#ifndef FRESHET_SERVING_HTTP_BEARER_AUTH_H_
#define FRESHET_SERVING_HTTP_BEARER_AUTH_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "serving/http/http_message.h"

namespace freshet::serving {

// Compares two byte strings in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// True when `request` carries "Authorization: Bearer <expected_token>" (scheme case-insensitive).
// An empty `expected_token` accepts nothing: admin routes stay closed until a token is configured.
bool HasBearerToken(const HttpRequest& request, absl::string_view expected_token);

// For handlers: std::nullopt when the token is right, else the response to send: 401 with
// "WWW-Authenticate: Bearer" when the header is missing or wrong, 403 when no token is configured.
std::optional<HttpResponse> CheckBearerToken(const HttpRequest& request,
                                             absl::string_view expected_token);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_BEARER_AUTH_H_
