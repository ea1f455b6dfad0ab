// The operator dashboard of `freshet serve`: one page, served by the same HTTP server as the API,
// that draws live charts from GET /metrics (events learnt per second, consumer lag, freshness,
// requests per second and latency, model version), shows a user's latest events and current
// recommendations as they change, an item's similar items, and the snapshots (listing them needs
// the admin token, which the page keeps in the browser's sessionStorage). The page, its script and
// its style sheet are compiled into the binary (embedded_assets.h) and load nothing from elsewhere;
// the page reads only the routes of serving/api.h. serving/dashboard/README.md says what it shows
// and where each number comes from.
//
// Routes:
//   GET /dashboard                  the page (text/html)
//   GET /dashboard/dashboard.js     its script (text/javascript)
//   GET /dashboard/dashboard.css    its style sheet (text/css)
//   GET /                           302 to /dashboard
// Every answer says "Cache-Control: no-cache" (a browser asks again after an upgrade, never runs
// an old script against a new API) and "X-Content-Type-Options: nosniff"; the page carries a
// Content-Security-Policy that allows scripts, styles and requests from its own origin only.
#ifndef FRESHET_SERVING_DASHBOARD_DASHBOARD_H_
#define FRESHET_SERVING_DASHBOARD_DASHBOARD_H_

#include "absl/status/status.h"
#include "serving/http/http_server.h"

namespace freshet::serving {

// Registers the routes above on `server`, before Start(). The handlers hold only the embedded
// bytes (no state, no locks) and run on the I/O threads. Fails as HttpServer::Handle does
// (FailedPrecondition once started; AlreadyExists when a route is already taken, e.g. called
// twice).
absl::Status RegisterDashboard(HttpServer& server);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_DASHBOARD_DASHBOARD_H_
