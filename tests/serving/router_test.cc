#include "serving/http/router.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serving/http/url.h"

namespace freshet::serving {
namespace {

HttpHandler Ok() {
  return [](const HttpRequest&) { return HttpResponse::Json(200, "{}"); };
}

TEST(UrlTest, DecodesPercentEscapes) {
  EXPECT_EQ(*UrlDecode("a%20b%2Fc%2fd", UrlDecodeMode::kPath), "a b/c/d");
  EXPECT_EQ(*UrlDecode("a+b", UrlDecodeMode::kPath), "a+b");
  EXPECT_EQ(*UrlDecode("a+b", UrlDecodeMode::kQuery), "a b");
  EXPECT_EQ(*UrlDecode("%C3%A9t%C3%A9", UrlDecodeMode::kPath), "\xC3\xA9t\xC3\xA9");
  EXPECT_FALSE(UrlDecode("bad%", UrlDecodeMode::kPath).ok());
  EXPECT_FALSE(UrlDecode("bad%4", UrlDecodeMode::kPath).ok());
  EXPECT_FALSE(UrlDecode("bad%zz", UrlDecodeMode::kPath).ok());
  EXPECT_FALSE(UrlDecode("nul%00", UrlDecodeMode::kPath).ok());
}

TEST(UrlTest, ParsesQueryStrings) {
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> q =
      ParseQueryString("k=20&exclude_seen=true&&flag&name=a+b%26c&k=99");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->size(), 4u);
  EXPECT_EQ(q->at("k"), "20");  // first value wins
  EXPECT_EQ(q->at("exclude_seen"), "true");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_EQ(q->at("name"), "a b&c");
  EXPECT_TRUE(ParseQueryString("")->empty());
  EXPECT_FALSE(ParseQueryString("a=%G1").ok());

  absl::string_view path, query;
  SplitTarget("/a/b?x=1?y", &path, &query);
  EXPECT_EQ(path, "/a/b");
  EXPECT_EQ(query, "x=1?y");
  SplitTarget("/a", &path, &query);
  EXPECT_EQ(path, "/a");
  EXPECT_EQ(query, "");
}

TEST(RouterTest, MatchesLiteralAndParamSegments) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/healthz", Ok()).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/users/{user}/recommendations", Ok()).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/users/{user}", Ok()).ok());
  ASSERT_TRUE(router.Add("POST", "/v1/users/{user}", Ok()).ok());
  ASSERT_TRUE(router.Add("GET", "/v1/items/{item}/similar", Ok()).ok());
  ASSERT_TRUE(router.Add("GET", "/", Ok()).ok());

  absl::flat_hash_map<std::string, std::string> params;
  Router::Match m = router.Find("GET", "/v1/users/u%2F1%20x/recommendations", &params);
  ASSERT_EQ(m.outcome, Router::Outcome::kFound);
  EXPECT_EQ(m.route->pattern, "/v1/users/{user}/recommendations");
  EXPECT_EQ(m.route->index, 1);
  EXPECT_EQ(params.at("user"), "u/1 x");

  m = router.Find("POST", "/v1/users/42", &params);
  ASSERT_EQ(m.outcome, Router::Outcome::kFound);
  EXPECT_EQ(m.route->method, "POST");
  EXPECT_EQ(params.at("user"), "42");

  m = router.Find("GET", "/healthz", &params);
  ASSERT_EQ(m.outcome, Router::Outcome::kFound);
  EXPECT_TRUE(params.empty());
  EXPECT_EQ(router.Find("GET", "/", &params).outcome, Router::Outcome::kFound);

  EXPECT_EQ(router.Find("GET", "/healthz/", &params).outcome, Router::Outcome::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/users", &params).outcome, Router::Outcome::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/users/", &params).outcome, Router::Outcome::kNotFound);
  EXPECT_EQ(router.Find("GET", "/v1/items/i1/similar/x", &params).outcome,
            Router::Outcome::kNotFound);
}

TEST(RouterTest, WrongMethodListsAllowedMethods) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/users/{user}", Ok()).ok());
  ASSERT_TRUE(router.Add("DELETE", "/v1/users/{id}", Ok()).ok());
  absl::flat_hash_map<std::string, std::string> params;
  Router::Match m = router.Find("PUT", "/v1/users/7", &params);
  EXPECT_EQ(m.outcome, Router::Outcome::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, DELETE");
  EXPECT_TRUE(params.empty());
}

TEST(RouterTest, BadPathsAndEscapes) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/v1/users/{user}", Ok()).ok());
  absl::flat_hash_map<std::string, std::string> params;
  EXPECT_EQ(router.Find("GET", "v1/users/x", &params).outcome, Router::Outcome::kBadPath);
  Router::Match m = router.Find("GET", "/v1/users/%zz", &params);
  EXPECT_EQ(m.outcome, Router::Outcome::kBadPath);
  EXPECT_THAT(m.error, ::testing::HasSubstr("%zz"));
}

TEST(RouterTest, RejectsBadPatterns) {
  Router router;
  EXPECT_EQ(router.Add("GET", "no/slash", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("", "/x", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("G T", "/x", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("GET", "/x/{}", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("GET", "/x/{a", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("GET", "/x/pre{a}", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("GET", "/x/{a}/{a}", Ok()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Add("GET", "/x", HttpHandler()).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(router.Add("GET", "/x/{a}", Ok()).ok());
  EXPECT_EQ(router.Add("GET", "/x/{a}", Ok()).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(router.routes().size(), 1u);
}

TEST(HttpMessageTest, StatusMappingAndErrorBodies) {
  EXPECT_EQ(JsonErrorBody(404, "no \"user\"\n"),
            "{\"error\":{\"code\":404,\"message\":\"no \\\"user\\\"\\n\"}}");
  EXPECT_EQ(HttpStatusFromStatus(absl::InvalidArgumentError("")), 400);
  EXPECT_EQ(HttpStatusFromStatus(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnavailableError("")), 503);
  EXPECT_EQ(HttpStatusFromStatus(absl::InternalError("")), 500);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnauthenticatedError("")), 401);
  HttpResponse r = ResponseFromStatus(absl::UnavailableError("busy"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");

  HttpRequest req;
  req.headers = {{"Content-Type", "a"}, {"X-Thing", "b"}, {"x-thing", "c"}};
  ASSERT_NE(req.Header("x-THING"), nullptr);
  EXPECT_EQ(*req.Header("x-THING"), "b");
  EXPECT_EQ(req.Header("missing"), nullptr);
}

}  // namespace
}  // namespace freshet::serving
