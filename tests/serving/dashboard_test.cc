// RegisterDashboard over real loopback sockets: the page and its assets, byte for byte as they
// are in serving/dashboard/, with their content types and caching; the redirect from /; and what
// the page refers to is served. The page in a browser: tests/browser/dashboard_test.py.
#include "serving/dashboard/dashboard.h"

#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serving/dashboard/embedded_assets.h"
#include "serving/http/http_server.h"
#include "tests/serving/http_test_client.h"

namespace freshet::serving {
namespace {

using ::freshet::serving::testing::ClientResponse;
using ::freshet::serving::testing::TestHttpClient;
using ::testing::HasSubstr;

std::string ReadSourceFile(const std::string& name) {
  const std::string path = absl::StrCat(FRESHET_SOURCE_DIR, "/serving/dashboard/", name);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(HttpServerOptions{});
    ASSERT_TRUE(RegisterDashboard(*server_).ok());
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override { server_->Stop(); }

  ClientResponse Get(const std::string& target) {
    absl::StatusOr<std::unique_ptr<TestHttpClient>> client =
        TestHttpClient::Connect(server_->port());
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return {};
    absl::StatusOr<ClientResponse> r = (*client)->Request("GET", target);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ClientResponse{};
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(DashboardTest, EmbedsEachFileByteForByte) {
  std::set<std::string> names;
  for (const EmbeddedAsset& asset : EmbeddedDashboardAssets()) {
    names.insert(asset.name);
    EXPECT_EQ(asset.bytes(), ReadSourceFile(asset.name)) << asset.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"index.html", "dashboard.js", "dashboard.css"}));
}

TEST_F(DashboardTest, ServesThePageAndItsAssets) {
  const ClientResponse page = Get("/dashboard");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.Header("Cache-Control"), "no-cache");
  EXPECT_EQ(page.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_THAT(page.Header("Content-Security-Policy"), HasSubstr("default-src 'none'"));
  EXPECT_THAT(page.Header("Content-Security-Policy"), HasSubstr("connect-src 'self'"));
  EXPECT_EQ(page.body, ReadSourceFile("index.html"));

  const ClientResponse js = Get("/dashboard/dashboard.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.Header("Cache-Control"), "no-cache");
  EXPECT_EQ(js.body, ReadSourceFile("dashboard.js"));

  const ClientResponse css = Get("/dashboard/dashboard.css");
  EXPECT_EQ(css.status, 200);
  EXPECT_EQ(css.Header("Content-Type"), "text/css; charset=utf-8");
  EXPECT_EQ(css.Header("Cache-Control"), "no-cache");
  EXPECT_EQ(css.body, ReadSourceFile("dashboard.css"));

  // The page is an embedded asset too, but only under /dashboard.
  EXPECT_EQ(Get("/dashboard/index.html").status, 404);
  EXPECT_EQ(Get("/dashboard/missing.js").status, 404);
}

TEST_F(DashboardTest, RootRedirectsToThePage) {
  const ClientResponse root = Get("/");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(root.Header("Location"), "/dashboard");
}

// Every script and style sheet the page names is served from here, and nothing in the page, its
// script or its style sheet names another origin (the machines it runs on have no internet).
TEST_F(DashboardTest, ThePageRefersOnlyToItsOwnAssets) {
  const std::string page = Get("/dashboard").body;
  const std::regex reference(R"re((?:src|href)="([^"]*)")re");
  int local = 0;
  for (std::sregex_iterator it(page.begin(), page.end(), reference), end; it != end; ++it) {
    const std::string target = (*it)[1];
    if (target == "data:," || target == "#") continue;  // the empty favicon; in-page links
    ASSERT_TRUE(absl::StartsWith(target, "/dashboard/")) << target;
    EXPECT_EQ(Get(target).status, 200) << target;
    ++local;
  }
  EXPECT_EQ(local, 2);  // the script and the style sheet
  for (const EmbeddedAsset& asset : EmbeddedDashboardAssets()) {
    EXPECT_FALSE(absl::StrContains(asset.bytes(), "http://")) << asset.name;
    EXPECT_FALSE(absl::StrContains(asset.bytes(), "https://")) << asset.name;
    EXPECT_FALSE(absl::StrContains(asset.bytes(), "@import")) << asset.name;
  }
}

TEST(DashboardRegisterTest, TwiceOnOneServerIsAlreadyExists) {
  HttpServer server(HttpServerOptions{});
  ASSERT_TRUE(RegisterDashboard(server).ok());
  EXPECT_EQ(RegisterDashboard(server).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace freshet::serving
