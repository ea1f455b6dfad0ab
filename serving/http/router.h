// Router: maps (method, path) to a handler. Patterns are absolute paths whose segments are either
// literal or a parameter in braces:
//   GET /v1/users/{user}/recommendations
// A parameter matches one non-empty path segment (a percent-encoded '/' stays inside it) and is
// percent-decoded into HttpRequest::params; literal segments match exactly. Matching is
// first-registered-first, so register literal routes before overlapping parameter routes.
//
// Thread-safety: Add() must finish before Find() is called; Find() is then safe from any number of
// threads (the router is immutable while the server runs).
#ifndef FRESHET_SERVING_HTTP_ROUTER_H_
#define FRESHET_SERVING_HTTP_ROUTER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "serving/http/http_message.h"

namespace freshet::serving {

// A route handler. It runs on a server I/O thread, so it must be short (no blocking I/O). A
// non-OK status becomes a JSON error (ResponseFromStatus); an exception becomes a 500.
using HttpHandler = std::function<absl::StatusOr<HttpResponse>(const HttpRequest&)>;

// An asynchronous route handler: it returns at once and the answer comes later through the
// responder, which must be called exactly once, from any thread. The request is valid only until
// the handler returns (copy what is needed). The connection reads nothing more until answered.
using HttpResponder = std::function<void(absl::StatusOr<HttpResponse>)>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

class Router {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    HttpHandler handler;
    AsyncHttpHandler async_handler;  // set instead of `handler` by AddAsync()
    int index = 0;                   // registration order, 0-based
    // Parsed pattern: one entry per segment; is_param[i] says whether segments[i] is a name.
    std::vector<std::string> segments;
    std::vector<bool> is_param;
  };

  enum class Outcome {
    kFound,             // route and params are set
    kNotFound,          // no pattern matches the path
    kMethodNotAllowed,  // some pattern matches, but not for this method; allow lists methods
    kBadPath,           // the path is not absolute or has a bad percent-escape; error says why
  };

  struct Match {
    Outcome outcome = Outcome::kNotFound;
    const Route* route = nullptr;
    std::string allow;  // "GET, POST" for kMethodNotAllowed
    std::string error;  // for kBadPath
  };

  // InvalidArgument when the method is empty or not a token, the pattern is not absolute, a
  // segment has unbalanced braces or an empty/duplicate parameter name; AlreadyExists when the
  // same method and pattern are registered twice.
  absl::Status Add(absl::string_view method, absl::string_view pattern, HttpHandler handler);
  absl::Status AddAsync(absl::string_view method, absl::string_view pattern,
                        AsyncHttpHandler handler);

  // Routes `path` (raw, still percent-encoded, without the query string). On kFound, *params
  // (cleared first) receives the decoded path parameters.
  Match Find(absl::string_view method, absl::string_view path,
             absl::flat_hash_map<std::string, std::string>* params) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_ROUTER_H_
