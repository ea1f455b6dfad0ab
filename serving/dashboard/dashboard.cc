#include "serving/dashboard/dashboard.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "serving/dashboard/embedded_assets.h"
#include "serving/http/http_message.h"

namespace freshet::serving {
namespace {

// The page reaches only its own origin: its script, its style sheet, and the API (fetch). A
// script or a request to anywhere else is refused by the browser and reported in its console,
// which the browser test checks is empty.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

absl::string_view ContentType(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

HttpResponse AssetResponse(const EmbeddedAsset& asset) {
  HttpResponse response =
      HttpResponse::Text(200, std::string(asset.bytes()), std::string(ContentType(asset.name)));
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (absl::EndsWith(asset.name, ".html")) {
    response.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  return response;
}

}  // namespace

absl::Status RegisterDashboard(HttpServer& server) {
  for (const EmbeddedAsset& asset : EmbeddedDashboardAssets()) {
    // Each response is built once, here; its handler hands out a copy.
    const std::string path = absl::string_view(asset.name) == "index.html"
                                 ? std::string("/dashboard")
                                 : absl::StrCat("/dashboard/", asset.name);
    FRESHET_RETURN_IF_ERROR(
        server.Handle("GET", path, [response = AssetResponse(asset)](const HttpRequest&) {
          return absl::StatusOr<HttpResponse>(response);
        }));
  }
  return server.Handle("GET", "/", [](const HttpRequest&) {
    HttpResponse response = HttpResponse::Text(302, "see /dashboard\n");
    response.headers.emplace_back("Location", "/dashboard");
    response.headers.emplace_back("Cache-Control", "no-cache");
    return absl::StatusOr<HttpResponse>(std::move(response));
  });
}

}  // namespace freshet::serving
