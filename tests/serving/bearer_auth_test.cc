#include "serving/http/bearer_auth.h"

#include <optional>

#include "gtest/gtest.h"
#include "serving/http/http_message.h"

namespace freshet::serving {
namespace {

HttpRequest WithAuthorization(std::string value) {
  HttpRequest req;
  req.headers.emplace_back("authorization", std::move(value));
  return req;
}

TEST(BearerAuthTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secre", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secrets", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "secret"));
}

TEST(BearerAuthTest, AcceptsOnlyTheRightToken) {
  EXPECT_TRUE(HasBearerToken(WithAuthorization("Bearer s3cret"), "s3cret"));
  EXPECT_TRUE(HasBearerToken(WithAuthorization("bearer   s3cret "), "s3cret"));
  EXPECT_FALSE(HasBearerToken(WithAuthorization("Bearer s3cre"), "s3cret"));
  EXPECT_FALSE(HasBearerToken(WithAuthorization("Basic s3cret"), "s3cret"));
  EXPECT_FALSE(HasBearerToken(WithAuthorization("s3cret"), "s3cret"));
  EXPECT_FALSE(HasBearerToken(HttpRequest{}, "s3cret"));
  // No configured token: nothing gets in, not even an empty bearer.
  EXPECT_FALSE(HasBearerToken(WithAuthorization("Bearer "), ""));
}

TEST(BearerAuthTest, CheckGivesTheResponseToSend) {
  EXPECT_FALSE(CheckBearerToken(WithAuthorization("Bearer t"), "t").has_value());
  std::optional<HttpResponse> denied = CheckBearerToken(WithAuthorization("Bearer x"), "t");
  ASSERT_TRUE(denied.has_value());
  EXPECT_EQ(denied->status, 401);
  ASSERT_EQ(denied->headers.size(), 1u);
  EXPECT_EQ(denied->headers[0].first, "WWW-Authenticate");
  std::optional<HttpResponse> disabled = CheckBearerToken(WithAuthorization("Bearer x"), "");
  ASSERT_TRUE(disabled.has_value());
  EXPECT_EQ(disabled->status, 403);
}

}  // namespace
}  // namespace freshet::serving
