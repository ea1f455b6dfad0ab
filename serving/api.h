// The HTTP API of `freshet serve` (ARCHITECTURE.md, "HTTP API" and "One HTTP request"), on an
// Engine:
//   GET  /v1/users/{user}/recommendations?k=20&exclude_seen=true&exclude=i1,i2
//   GET  /v1/items/{item}/similar?k=20
//   POST /v1/events            one event object or an array of them (README, "HTTP API"); an
//                              Idempotency-Key header makes a retry apply nothing twice
//   GET  /v1/users/{user}
//   GET  /healthz, /readyz, /metrics
//   /admin/... (bearer token): snapshots (list, create, inspect, delete, restore), item
//   availability (hide an item from every answer without forgetting it), the configuration.
// Every recommendation states the model version and the user's freshness:
//   {"user", "items": [{"item", "score"}], "source": "personalized"|"popular", "model_version",
//    "user_events", "last_event_ts", "applied_ms_ago"}
#ifndef FRESHET_SERVING_API_H_
#define FRESHET_SERVING_API_H_

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/json_writer.h"
#include "config/config.h"
#include "engine/engine.h"
#include "serving/http/http_server.h"
#include "serving/metrics/metrics_registry.h"
#include "stream/event.h"

namespace freshet::serving {

struct ApiOptions {
  // Bearer token of the /admin routes; empty: they answer 403.
  std::string admin_token;
  // Where POST /v1/events goes when set (a Kafka topic, so the events reach the learner through
  // the exactly-once path); otherwise straight into the learner.
  std::function<absl::Status(const std::vector<stream::Event>&)> publish;
  // Readiness beyond "state loaded": e.g. the Kafka source has its partitions. Null: ready.
  std::function<bool()> sources_ready;
  // Why the sources cannot be read now (e.g. no broker reachable for serve.unready_after_ms), or
  // OK. Null: OK.
  std::function<absl::Status()> sources_health;
  // Members added to /readyz's JSON answer (e.g. a serving replica's item-state age). Optional.
  std::function<void(JsonWriter&)> ready_detail;
  // Consumer lag summed over partitions, for /metrics; null when there is no broker.
  std::function<int64_t()> consumer_lag;
  // Consumer lag of every assigned partition: (topic, partition, messages). Optional.
  std::function<std::vector<std::tuple<std::string, int32_t, int64_t>>()> partition_lag;
  // The compute backend asked for (kernels.backend / --backend: cpu, cuda, auto) and the line that
  // says what was chosen and why (e.g. why auto fell back to the CPU), for /metrics.
  std::string backend_requested;
  std::string backend_note;
  int max_k = 1000;
  int default_k = 20;
  config::Config config;  // event type weights, and GET /admin/config
};

// Registers every route on `server` (before Start()) and the engine's gauges on `metrics`.
// `engine` and `metrics` must outlive the server.
absl::Status RegisterApi(HttpServer& server, engine::Engine& engine, MetricsRegistry& metrics,
                         ApiOptions options);

// Decodes a POST /v1/events body: one event object or an array of them in the format of
// ARCHITECTURE.md, "Event format" (ts defaults to `now_ms`, weight to the type's).
// InvalidArgument naming the first bad event.
// OK for an id (user, item, event id, category) the API may take: valid UTF-8, at most
// events.max_id_bytes; else InvalidArgument naming `what`. Ids that no event could have carried
// are refused at the door, so nothing downstream ever sees or echoes such bytes.
absl::Status CheckId(absl::string_view what, absl::string_view id, const config::Config& config);

absl::StatusOr<std::vector<stream::Event>> ParseEventsBody(absl::string_view body,
                                                           const config::Config& config,
                                                           int64_t now_ms);

// The Idempotency-Key header of POST /v1/events: the events without an "id" of their own get
// `key` (a single event) or `key/<index in the body>` (an array), so a retried request repeats
// exactly the ids of the first. InvalidArgument for an empty key, one that is not UTF-8, or ids
// longer than events.max_id_bytes.
absl::Status ApplyIdempotencyKey(absl::string_view key, const config::Config& config,
                                 std::vector<stream::Event>* events);

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_API_H_
