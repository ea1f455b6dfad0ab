// Fuzz target: the request-target side of the HTTP server (serving/http/url.h, router.h), in
// process. Input: one byte choosing the method (and, with its top bit, an extra route), then the
// request target as the server gets it ("/v1/users/u%2042/recommendations?k=5"). With the top bit
// set the rest is "pattern\ntarget": the pattern is also registered (Router::Add may reject it).
//
// Checks, beyond "no crash": UrlDecode accepts exactly the texts whose '%' all start a non-NUL
// two-hex-digit escape and returns the bytes a reference decoder gives; percent-encoding its
// output decodes back to it; ParseQueryString never yields more entries than '&'-pieces; and
// Router::Find agrees with a plain reference matcher over the project's routes (first matching
// route for the method wins, 405 lists the other methods, decoded parameters are non-empty).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "serving/http/http_message.h"
#include "serving/http/router.h"
#include "serving/http/url.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::serving {
namespace {

// The routes of `freshet serve` (serving/api.cc), in its registration order, plus a route whose
// parameter is not the last segment next to a literal one.
struct RouteSpec {
  const char* method;
  const char* pattern;
};
constexpr RouteSpec kRoutes[] = {
    {"GET", "/v1/users/{user}/recommendations"},
    {"GET", "/v1/items/{item}/similar"},
    {"POST", "/v1/events"},
    {"GET", "/v1/users/{user}"},
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/metrics"},
    {"GET", "/admin/snapshots"},
    {"POST", "/admin/snapshots"},
    {"GET", "/admin/snapshots/{id}"},
    {"DELETE", "/admin/snapshots/{id}"},
    {"POST", "/admin/snapshots/{id}/restore"},
    {"PUT", "/admin/items/{item}/availability"},
    {"GET", "/admin/items/hidden"},
    {"GET", "/admin/config"},
    {"GET", "/"},
};
constexpr const char* kMethods[] = {"GET",  "POST",  "PUT",     "DELETE",
                                    "HEAD", "PATCH", "OPTIONS", "get"};

std::string Hex(absl::string_view s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reference decoder: false when a '%' does not start a valid non-NUL escape.
bool ReferenceDecode(absl::string_view text, UrlDecodeMode mode, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return false;
      const int h = HexDigit(text[i + 1]);
      const int l = HexDigit(text[i + 2]);
      if (h < 0 || l < 0 || (h == 0 && l == 0)) return false;
      out->push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (text[i] == '+' && mode == UrlDecodeMode::kQuery) {
      out->push_back(' ');
    } else {
      out->push_back(text[i]);
    }
  }
  return true;
}

// Percent-encodes every byte but the unreserved ones and NUL (which has no allowed escape).
std::string PercentEncodeAll(absl::string_view s) {
  std::string out;
  for (const char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u == 0 || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
        u == '-' || u == '_' || u == '.' || u == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(u, absl::kZeroPad2));
    }
  }
  return out;
}

void CheckUrlDecode(absl::string_view text, UrlDecodeMode mode) {
  const char* mode_name = mode == UrlDecodeMode::kPath ? "path" : "query";
  std::string expected;
  const bool valid = ReferenceDecode(text, mode, &expected);
  const absl::StatusOr<std::string> decoded = UrlDecode(text, mode);
  FUZZ_CHECK(decoded.ok() == valid, absl::StrCat("UrlDecode(", Hex(text), ", ", mode_name, ") ok=",
                                                 decoded.ok(), " but the reference says ", valid));
  if (!decoded.ok()) return;
  FUZZ_CHECK(*decoded == expected, absl::StrCat("UrlDecode(", Hex(text), ", ", mode_name, ") = ",
                                                Hex(*decoded), ", expected ", Hex(expected)));
  // No escape decodes to NUL (raw NUL bytes, which the HTTP parser never lets through, stay).
  FUZZ_CHECK(std::count(decoded->begin(), decoded->end(), '\0') ==
                 std::count(text.begin(), text.end(), '\0'),
             Hex(text));
  const absl::StatusOr<std::string> again = UrlDecode(PercentEncodeAll(*decoded), mode);
  FUZZ_CHECK(again.ok() && *again == *decoded,
             absl::StrCat("re-encoded ", Hex(*decoded), " does not decode back"));
}

struct Built {
  Router router;
  std::vector<RouteSpec> specs;  // what was registered, in order (the extra route last)
};

HttpHandler Trivial() {
  return [](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
    return HttpResponse::Json(200, "{}");
  };
}

const Router& ProjectRouter() {
  static const Router* router = [] {
    auto* r = new Router();
    for (const RouteSpec& spec : kRoutes) {
      const absl::Status added = r->Add(spec.method, spec.pattern, Trivial());
      FUZZ_CHECK(added.ok(), added.ToString());
    }
    return r;
  }();
  return *router;
}

// Reference matcher over the router's parsed routes.
void CheckFind(const Router& router, absl::string_view method, absl::string_view path) {
  absl::flat_hash_map<std::string, std::string> params;
  params["stale"] = "x";  // Find must clear it
  const Router::Match match = router.Find(method, path, &params);
  const std::string what = absl::StrCat(method, " ", Hex(path));
  if (path.empty() || path[0] != '/') {
    FUZZ_CHECK(match.outcome == Router::Outcome::kBadPath, what);
    FUZZ_CHECK(params.empty(), what);
    return;
  }
  std::vector<absl::string_view> segments = absl::StrSplit(path.substr(1), '/');
  const Router::Route* first = nullptr;
  std::vector<std::string> allowed;
  for (const Router::Route& route : router.routes()) {
    if (route.segments.size() != segments.size()) continue;
    bool matches = true;
    for (size_t i = 0; i < segments.size(); ++i) {
      if (route.is_param[i] ? segments[i].empty() : segments[i] != route.segments[i]) {
        matches = false;
        break;
      }
    }
    if (!matches) continue;
    if (route.method == method) {
      if (first == nullptr) first = &route;
    } else if (first == nullptr &&
               std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  if (first != nullptr) {
    bool all_decode = true;
    for (size_t i = 0; i < segments.size(); ++i) {
      std::string ignored;
      if (first->is_param[i] && !ReferenceDecode(segments[i], UrlDecodeMode::kPath, &ignored)) {
        all_decode = false;
      }
    }
    if (!all_decode) {
      FUZZ_CHECK(match.outcome == Router::Outcome::kBadPath, what);
      FUZZ_CHECK(!match.error.empty() && params.empty(), what);
      return;
    }
    FUZZ_CHECK(match.outcome == Router::Outcome::kFound,
               absl::StrCat(what, ": expected ", first->pattern, ", outcome ",
                            static_cast<int>(match.outcome)));
    FUZZ_CHECK(match.route == first, absl::StrCat(what, ": matched ", match.route->pattern,
                                                  ", the first match is ", first->pattern));
    size_t n_params = 0;
    for (size_t i = 0; i < segments.size(); ++i) {
      if (!first->is_param[i]) continue;
      ++n_params;
      std::string expected;
      ReferenceDecode(segments[i], UrlDecodeMode::kPath, &expected);
      const auto it = params.find(first->segments[i]);
      FUZZ_CHECK(it != params.end(), absl::StrCat(what, ": no param ", first->segments[i]));
      FUZZ_CHECK(!it->second.empty() && it->second == expected,
                 absl::StrCat(what, ": param ", first->segments[i], " = ", Hex(it->second)));
    }
    FUZZ_CHECK(params.size() == n_params, what);
    return;
  }
  FUZZ_CHECK(params.empty(), what);
  if (allowed.empty()) {
    FUZZ_CHECK(match.outcome == Router::Outcome::kNotFound, what);
  } else {
    FUZZ_CHECK(match.outcome == Router::Outcome::kMethodNotAllowed, what);
    FUZZ_CHECK(match.allow == absl::StrJoin(allowed, ", "),
               absl::StrCat(what, ": allow \"", match.allow, "\", expected \"",
                            absl::StrJoin(allowed, ", "), "\""));
  }
}

}  // namespace
}  // namespace freshet::serving

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace freshet::serving;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const absl::string_view method = kMethods[selector % std::size(kMethods)];

  absl::string_view target = rest;
  absl::string_view pattern;
  const bool extra_route = (selector & 0x80) != 0;
  if (extra_route) {
    const size_t nl = rest.find('\n');
    pattern = rest.substr(0, nl);
    target = nl == absl::string_view::npos ? absl::string_view() : rest.substr(nl + 1);
  }

  absl::string_view path;
  absl::string_view query;
  SplitTarget(target, &path, &query);
  FUZZ_CHECK(path.size() + (target.size() > path.size() ? 1 + query.size() : 0) == target.size(),
             Hex(target));
  FUZZ_CHECK(path.find('?') == absl::string_view::npos, Hex(target));

  CheckUrlDecode(path, UrlDecodeMode::kPath);
  CheckUrlDecode(query, UrlDecodeMode::kQuery);

  const absl::StatusOr<absl::flat_hash_map<std::string, std::string>> parsed =
      ParseQueryString(query);
  if (parsed.ok()) {
    const size_t pieces = std::count(query.begin(), query.end(), '&') + 1;
    FUZZ_CHECK(parsed->size() <= pieces, Hex(query));
    if (query.find('\0') == absl::string_view::npos) {
      for (const auto& [key, value] : *parsed) {
        FUZZ_CHECK(key.find('\0') == std::string::npos && value.find('\0') == std::string::npos,
                   Hex(query));
      }
    }
  }

  if (!extra_route) {
    CheckFind(ProjectRouter(), method, path);
    return 0;
  }
  Router router;
  for (const RouteSpec& spec : kRoutes) {
    FUZZ_CHECK(router.Add(spec.method, spec.pattern, Trivial()).ok(), spec.pattern);
  }
  const absl::Status added = router.Add(method, pattern, Trivial());
  if (added.ok()) {
    const Router::Route& route = router.routes().back();
    FUZZ_CHECK(!pattern.empty() && pattern[0] == '/', Hex(pattern));
    FUZZ_CHECK(route.segments.size() == route.is_param.size(), Hex(pattern));
    for (size_t i = 0; i < route.segments.size(); ++i) {
      if (route.is_param[i]) {
        FUZZ_CHECK(!route.segments[i].empty() &&
                       route.segments[i].find_first_of("{}") == std::string::npos,
                   Hex(pattern));
      }
    }
  }
  CheckFind(router, method, path);
  return 0;
}
