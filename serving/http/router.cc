#include "serving/http/router.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "serving/http/request_parser.h"
#include "serving/http/url.h"

namespace freshet::serving {
namespace {

// Splits "/a/b/c" into {"a", "b", "c"}; "/" gives {""}.
std::vector<absl::string_view> Segments(absl::string_view path) {
  return absl::StrSplit(path.substr(1), '/');
}

}  // namespace

absl::Status Router::Add(absl::string_view method, absl::string_view pattern, HttpHandler handler) {
  if (!IsHttpToken(method)) {
    return absl::InvalidArgumentError(absl::StrCat("bad HTTP method '", method, "'"));
  }
  if (pattern.empty() || pattern[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("route pattern '", pattern, "' must start with '/'"));
  }
  if (!handler) {
    return absl::InvalidArgumentError(
        absl::StrCat("route ", method, " ", pattern, " has no handler"));
  }
  Route route;
  route.method = std::string(method);
  route.pattern = std::string(pattern);
  route.handler = std::move(handler);
  route.index = static_cast<int>(routes_.size());
  for (absl::string_view segment : Segments(pattern)) {
    const bool opens = segment.find('{') != absl::string_view::npos;
    const bool closes = segment.find('}') != absl::string_view::npos;
    if (!opens && !closes) {
      route.segments.emplace_back(segment);
      route.is_param.push_back(false);
      continue;
    }
    if (segment.size() < 3 || segment.front() != '{' || segment.back() != '}' ||
        segment.substr(1, segment.size() - 2).find_first_of("{}") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("route pattern '", pattern, "': segment '", segment,
                       "' must be literal or a whole non-empty {name}"));
    }
    std::string name(segment.substr(1, segment.size() - 2));
    for (size_t i = 0; i < route.segments.size(); ++i) {
      if (route.is_param[i] && route.segments[i] == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("route pattern '", pattern, "' repeats parameter {", name, "}"));
      }
    }
    route.segments.push_back(std::move(name));
    route.is_param.push_back(true);
  }
  for (const Route& existing : routes_) {
    if (existing.method == route.method && existing.pattern == route.pattern) {
      return absl::AlreadyExistsError(
          absl::StrCat("route ", method, " ", pattern, " is already registered"));
    }
  }
  routes_.push_back(std::move(route));
  return absl::OkStatus();
}

absl::Status Router::AddAsync(absl::string_view method, absl::string_view pattern,
                              AsyncHttpHandler handler) {
  if (!handler) {
    return absl::InvalidArgumentError(
        absl::StrCat("route ", method, " ", pattern, " has no handler"));
  }
  // The synchronous slot is never called for an asynchronous route.
  FRESHET_RETURN_IF_ERROR(
      Add(method, pattern, [](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        return absl::InternalError("asynchronous route called synchronously");
      }));
  routes_.back().async_handler = std::move(handler);
  return absl::OkStatus();
}

Router::Match Router::Find(absl::string_view method, absl::string_view path,
                           absl::flat_hash_map<std::string, std::string>* params) const {
  Match match;
  params->clear();
  if (path.empty() || path[0] != '/') {
    match.outcome = Outcome::kBadPath;
    match.error = absl::StrCat("request path '", path, "' is not absolute");
    return match;
  }
  const std::vector<absl::string_view> segments = Segments(path);
  std::vector<std::string> allowed;
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    bool matches = true;
    for (size_t i = 0; i < segments.size() && matches; ++i) {
      matches = route.is_param[i] ? !segments[i].empty() : segments[i] == route.segments[i];
    }
    if (!matches) continue;
    if (route.method != method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
        allowed.push_back(route.method);
      }
      continue;
    }
    for (size_t i = 0; i < segments.size(); ++i) {
      if (!route.is_param[i]) continue;
      absl::StatusOr<std::string> value = UrlDecode(segments[i], UrlDecodeMode::kPath);
      if (!value.ok()) {
        params->clear();
        match.outcome = Outcome::kBadPath;
        match.error = std::string(value.status().message());
        return match;
      }
      (*params)[route.segments[i]] = std::move(*value);
    }
    match.outcome = Outcome::kFound;
    match.route = &route;
    return match;
  }
  if (!allowed.empty()) {
    match.outcome = Outcome::kMethodNotAllowed;
    match.allow = absl::StrJoin(allowed, ", ");
  }
  return match;
}

}  // namespace freshet::serving
