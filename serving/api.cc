#include "serving/api.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "engine/follower/publisher.h"
#include "serving/http/bearer_auth.h"
#include "simdjson.h"
#include "stream/event_codec.h"
#include "stream/event_validation.h"

namespace freshet::serving {

using engine::Engine;
using engine::RecommendResult;
using engine::ScoredId;
using engine::UserInfo;

namespace {

HttpResponse JsonOk(const JsonWriter& w) { return HttpResponse::Json(200, w.str()); }

// Query parameter `name` as an int in [lo, hi]; `fallback` when absent.
absl::StatusOr<int> IntParam(const HttpRequest& req, absl::string_view name, int fallback, int lo,
                             int hi) {
  const std::string* v = req.Query(name);
  if (v == nullptr) return fallback;
  int n = 0;
  if (!absl::SimpleAtoi(*v, &n) || n < lo || n > hi) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query parameter '", name, "' must be an integer in [", lo, ", ", hi, "], got '", *v, "'"));
  }
  return n;
}

absl::StatusOr<bool> BoolParam(const HttpRequest& req, absl::string_view name, bool fallback) {
  const std::string* v = req.Query(name);
  if (v == nullptr) return fallback;
  const std::string s = absl::AsciiStrToLower(*v);
  if (s == "true" || s == "1" || s == "yes") return true;
  if (s == "false" || s == "0" || s == "no") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("query parameter '", name, "' must be true or false, got '", *v, "'"));
}

// `fields`: the catalog fields to add to each item ({} for none).
void WriteItems(JsonWriter& w, const std::vector<ScoredId>& items,
                const engine::Catalog* catalog = nullptr,
                const std::vector<std::string>& fields = {}) {
  w.Key("items").BeginArray();
  for (const ScoredId& s : items) {
    w.BeginObject().Key("item").String(s.item).Key("score").Float(s.score);
    if (!fields.empty()) catalog->WriteFields(s.item, fields, w);
    w.EndObject();
  }
  w.EndArray();
}

// ?fields=title,category: the catalog fields an answer should carry with each item ("*": all).
absl::StatusOr<std::vector<std::string>> FieldsParam(const HttpRequest& req) {
  std::vector<std::string> fields;
  const std::string* given = req.Query("fields");
  if (given == nullptr) return fields;
  for (absl::string_view f : absl::StrSplit(*given, ',', absl::SkipEmpty())) {
    if (f != "*" && !engine::IsCatalogFieldName(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fields: '", f, "' is not a field name (a-z, 0-9, '_', '-'; or * for all)"));
    }
    fields.emplace_back(f);
  }
  if (fields.size() > engine::kMaxCatalogFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("fields: at most ", engine::kMaxCatalogFields, " names"));
  }
  return fields;
}

// Recommendations kept to one catalog category: the model's top `ask` (8k at first) filtered,
// asked again with four times as many while fewer than k match and more items are left, so the
// answer is the exact top k of the category (for a rare category, at the cost of larger top-Ks).
void RecommendInCategory(Engine* e, std::string user, int k, int64_t ask, bool exclude_seen,
                         std::vector<std::string> exclude, std::string category, int64_t items,
                         Engine::RecommendDone done) {
  const int asked = static_cast<int>(std::min<int64_t>(ask, std::max<int64_t>(items, k)));
  // Copies for the callback (the originals are passed on by reference before it runs).
  auto again = [e, user, k, exclude_seen, exclude, category, items, asked,
                done = std::move(done)](absl::StatusOr<RecommendResult> result) mutable {
    if (!result.ok()) return done(std::move(result));
    const size_t scored = result->items.size();
    std::vector<ScoredId> kept;
    for (ScoredId& s : result->items) {
      if (static_cast<int>(kept.size()) == k) break;
      if (e->catalog().InCategory(s.item, category)) kept.push_back(std::move(s));
    }
    if (static_cast<int>(kept.size()) < k && static_cast<int64_t>(scored) == asked &&
        asked < items) {
      return RecommendInCategory(e, std::move(user), k, int64_t{asked} * 4, exclude_seen,
                                 std::move(exclude), std::move(category), items, std::move(done));
    }
    result->items = std::move(kept);
    done(std::move(result));
  };
  e->RecommendAsync(user, asked, exclude_seen, exclude, std::move(again));
}

stream::EventCodecOptions EventOptions(const config::Config& config) {
  stream::EventCodecOptions options;
  options.type_weights = config.type_weights;
  options.default_weight = config.default_weight;
  options.limits = {config.max_event_weight, config.max_id_bytes};
  return options;
}

void WriteManifest(JsonWriter& w, const engine::SnapshotManifest& m) {
  w.BeginObject();
  engine::WriteManifestSummary(w, m);
  w.Key("bytes").Int(m.bytes());
  w.EndObject();
}

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

// Ids in a path or a query are refused at the door when no event could have carried them (not
// UTF-8, or too long), so nothing downstream ever sees or echoes such bytes.
absl::Status CheckId(absl::string_view what, absl::string_view id, const config::Config& config) {
  if (!IsValidUtf8(id))
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8"));
  if (id.size() > static_cast<size_t>(config.max_id_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is longer than ", config.max_id_bytes,
                                                   " bytes (events.max_id_bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<stream::Event>> ParseEventsBody(absl::string_view body,
                                                           const config::Config& config,
                                                           int64_t now_ms) {
  // Each event's own text goes to the codec of jsonl files and Kafka messages (a parsed and
  // re-serialized copy could differ: "user":-0 would become 0).
  const absl::Status not_json = absl::InvalidArgumentError("the body is not valid JSON");
  const simdjson::padded_string padded(body.data(), body.size());
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::json_type type;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc.type().get(type) != simdjson::SUCCESS) {
    return not_json;
  }
  std::vector<absl::string_view> texts;
  if (type == simdjson::ondemand::json_type::object) {
    texts.emplace_back(body.data(), body.size());
  } else if (type == simdjson::ondemand::json_type::array) {
    simdjson::ondemand::array array;
    if (doc.get_array().get(array) != simdjson::SUCCESS) return not_json;
    for (auto element : array) {
      simdjson::ondemand::value value;
      if (element.get(value) != simdjson::SUCCESS || value.type().get(type) != simdjson::SUCCESS) {
        return not_json;
      }
      if (type != simdjson::ondemand::json_type::object) {
        return absl::InvalidArgumentError(absl::StrCat("event ", texts.size(), ": not an object"));
      }
      simdjson::ondemand::object object;
      std::string_view text;
      if (value.get_object().get(object) != simdjson::SUCCESS ||
          object.raw_json().get(text) != simdjson::SUCCESS) {
        return not_json;
      }
      texts.emplace_back(text.data(), text.size());
    }
    const char* after = nullptr;  // anything after the array
    if (doc.current_location().get(after) != simdjson::OUT_OF_BOUNDS) return not_json;
  } else {
    return absl::InvalidArgumentError("the body is not an event or an array of events");
  }
  if (texts.empty()) return absl::InvalidArgumentError("no events in the body");
  stream::EventCodec codec(EventOptions(config));
  std::vector<stream::Event> events(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (auto bad = codec.Decode(texts[i], now_ms, &events[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("event ", i, ": ", stream::DescribeRejection(*bad, codec.options().limits)));
    }
  }
  return events;
}

absl::Status ApplyIdempotencyKey(absl::string_view key, const config::Config& config,
                                 std::vector<stream::Event>* events) {
  if (key.empty()) return absl::InvalidArgumentError("the Idempotency-Key header is empty");
  const bool single = events->size() == 1;
  for (size_t i = 0; i < events->size(); ++i) {
    stream::Event& event = (*events)[i];
    if (!event.id.empty()) continue;  // the event's own id wins
    event.id = single ? std::string(key) : absl::StrCat(key, "/", i);
    // The rules of every id (UTF-8, events.max_id_bytes), on the id the header makes.
    FRESHET_RETURN_IF_ERROR(
        CheckId("the event id from the Idempotency-Key header", event.id, config));
  }
  return absl::OkStatus();
}

absl::Status RegisterApi(HttpServer& server, Engine& engine, MetricsRegistry& metrics,
                         ApiOptions options) {
  auto opts = std::make_shared<const ApiOptions>(std::move(options));
  Engine* e = &engine;

  // Recommendations are answered asynchronously: the query waits to be scored in a batch with
  // the concurrent ones (engine::ModelReader::RecommendAsync) without holding an I/O thread.
  FRESHET_RETURN_IF_ERROR(server.HandleAsync(
      "GET", "/v1/users/{user}/recommendations",
      [e, opts](const HttpRequest& req, HttpResponder respond) {
        std::string user = *req.Param("user");
        if (auto valid = CheckId("the user id", user, opts->config); !valid.ok()) {
          return respond(valid);
        }
        auto k = IntParam(req, "k", opts->default_k, 1, opts->max_k);
        if (!k.ok()) return respond(k.status());
        auto exclude_seen = BoolParam(req, "exclude_seen", true);
        if (!exclude_seen.ok()) return respond(exclude_seen.status());
        std::vector<std::string> exclude;
        if (const std::string* x = req.Query("exclude")) {
          exclude = absl::StrSplit(*x, ',', absl::SkipEmpty());
          for (const std::string& item : exclude) {
            if (auto valid = CheckId("an excluded item id", item, opts->config); !valid.ok()) {
              return respond(valid);
            }
          }
        }
        auto fields = FieldsParam(req);
        if (!fields.ok()) return respond(fields.status());
        const std::string* category = req.Query("category");
        if (category != nullptr) {
          if (auto valid = CheckId("the category", *category, opts->config); !valid.ok()) {
            return respond(valid);
          }
        }
        auto answer = [e, user, fields = *std::move(fields),
                       respond = std::move(respond)](absl::StatusOr<RecommendResult> result) {
          if (!result.ok()) return respond(result.status());
          JsonWriter w;
          // About 50 bytes an item and 150 for the rest: one allocation, not eight.
          w.Reserve(192 + user.size() + (64 + 64 * fields.size()) * result->items.size());
          w.BeginObject();
          w.Key("user").String(user);
          WriteItems(w, result->items, &e->catalog(), fields);
          w.Key("source").String(result->personalized ? "personalized" : "popular");
          if (!result->user_state.empty()) w.Key("user_state").String(result->user_state);
          w.Key("model_version").Int(result->model_version);
          w.Key("user_events").Int(result->user.events);
          w.Key("last_event_ts").Int(result->user.last_event_ts);
          w.Key("applied_ms_ago");
          if (result->user.applied_ms_ago >= 0) {
            w.Double(result->user.applied_ms_ago);
          } else {
            w.Null();
          }
          w.EndObject();
          respond(JsonOk(w));
        };
        if (category != nullptr) {
          return RecommendInCategory(e, user, *k, int64_t{*k} * 8, *exclude_seen,
                                     std::move(exclude), *category, e->stats().items,
                                     std::move(answer));
        }
        e->RecommendAsync(user, *k, *exclude_seen, exclude, std::move(answer));
      }));

  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/items/{item}/similar",
      [e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        const std::string& item = *req.Param("item");
        FRESHET_RETURN_IF_ERROR(CheckId("the item id", item, opts->config));
        FRESHET_ASSIGN_OR_RETURN(int k, IntParam(req, "k", opts->default_k, 1, opts->max_k));
        FRESHET_ASSIGN_OR_RETURN(const std::vector<std::string> fields, FieldsParam(req));
        std::vector<ScoredId> items;
        FRESHET_RETURN_IF_ERROR(e->SimilarTo(item, k, &items));
        JsonWriter w;
        w.BeginObject().Key("item").String(item);
        if (!fields.empty()) e->catalog().WriteFields(item, fields, w);
        WriteItems(w, items, &e->catalog(), fields);
        w.Key("model_version").Int(e->model_version());
        w.EndObject();
        return JsonOk(w);
      }));

  // Blocking routes (a broker's acknowledgement, a snapshot, a restore) run on the server's
  // blocking threads (HandleBlocking), never on an I/O thread.
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "POST", "/v1/events", [e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        FRESHET_ASSIGN_OR_RETURN(
            std::vector<stream::Event> events,
            ParseEventsBody(req.body, opts->config, absl::ToUnixMillis(absl::Now())));
        const int64_t received_ms = absl::ToUnixMillis(absl::Now());
        for (stream::Event& event : events) event.received_ms = received_ms;
        if (const std::string* key = req.Header("Idempotency-Key")) {
          FRESHET_RETURN_IF_ERROR(ApplyIdempotencyKey(*key, opts->config, &events));
        }
        const char* route = "learner";
        int64_t repeats = -1;  // known only when learnt here
        if (opts->publish) {
          FRESHET_RETURN_IF_ERROR(opts->publish(events));
          route = "kafka";
        } else {
          // Without a broker nothing could deliver these events again: while the state cannot
          // be persisted they are refused (503, Retry-After) rather than learnt and then lost.
          if (const absl::Status health = e->PersistenceHealth(); !health.ok()) {
            return absl::UnavailableError(absl::StrCat(
                "events are not accepted while they cannot be persisted: ", health.message()));
          }
          repeats = e->ApplyDirect(events);
        }
        JsonWriter w;
        w.BeginObject().Key("accepted").Int(static_cast<int64_t>(events.size()));
        w.Key("to").String(route);
        // Events whose id was applied before, not applied again (a retry).
        if (repeats >= 0) w.Key("repeats").Int(repeats);
        w.EndObject();
        return HttpResponse::Json(202, w.str());
      }));

  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/users/{user}", [e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        const std::string& user = *req.Param("user");
        FRESHET_RETURN_IF_ERROR(CheckId("the user id", user, opts->config));
        FRESHET_ASSIGN_OR_RETURN(const std::vector<std::string> fields, FieldsParam(req));
        const UserInfo info = e->User(user);
        if (!info.known) return absl::NotFoundError(absl::StrCat("unknown user '", user, "'"));
        JsonWriter w;
        w.BeginObject();
        w.Key("user").String(user);
        // The items of the latest events, newest first, with the catalog fields asked for.
        w.Key("recent").BeginArray();
        for (const std::string& item : info.recent) {
          w.BeginObject().Key("item").String(item);
          if (!fields.empty()) e->catalog().WriteFields(item, fields, w);
          w.EndObject();
        }
        w.EndArray();
        w.Key("events").Int(info.events);
        w.Key("last_event_ts").Int(info.last_event_ts);
        w.Key("applied_ms_ago");
        if (info.applied_ms_ago >= 0) {
          w.Double(info.applied_ms_ago);
        } else {
          w.Null();
        }
        w.Key("model_version").Int(e->model_version());
        w.EndObject();
        return JsonOk(w);
      }));

  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/v1/items/{item}", [e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        const std::string& item = *req.Param("item");
        FRESHET_RETURN_IF_ERROR(CheckId("the item id", item, opts->config));
        JsonWriter w;
        w.BeginObject().Key("item").String(item);
        const std::vector<std::string> all = {"*"};
        if (!e->catalog().WriteFields(item, all, w)) {
          return absl::NotFoundError(absl::StrCat("item '", item, "' is not in the catalog"));
        }
        w.EndObject();
        return JsonOk(w);
      }));

  FRESHET_RETURN_IF_ERROR(server.Handle("GET", "/healthz", [](const HttpRequest&) {
    return absl::StatusOr<HttpResponse>(HttpResponse::Json(200, "{\"status\":\"ok\"}"));
  }));
  FRESHET_RETURN_IF_ERROR(server.Handle("GET", "/readyz", [e, opts](const HttpRequest&) {
    // The engine exists only once its state is loaded; what is left: the store accepting
    // writes, the learning loop going round, the sources reachable and assigned.
    if (const absl::Status health = e->PersistenceHealth(); !health.ok()) {
      return absl::StatusOr<HttpResponse>(ErrorResponse(503, health.message()));
    }
    const absl::Duration stall = absl::Milliseconds(opts->config.serve_unready_after_ms);
    if (const absl::Status health = e->IngestHealth(stall); !health.ok()) {
      return absl::StatusOr<HttpResponse>(ErrorResponse(503, health.message()));
    }
    if (opts->sources_health) {
      if (const absl::Status health = opts->sources_health(); !health.ok()) {
        return absl::StatusOr<HttpResponse>(ErrorResponse(503, health.message()));
      }
    }
    const bool ready = !opts->sources_ready || opts->sources_ready();
    if (!ready) {
      return absl::StatusOr<HttpResponse>(
          ErrorResponse(503, "waiting for the event sources (Kafka partition assignment)"));
    }
    if (!opts->ready_detail) {
      return absl::StatusOr<HttpResponse>(HttpResponse::Json(200, "{\"status\":\"ready\"}"));
    }
    JsonWriter w;
    w.BeginObject();
    w.Key("status").String("ready");
    opts->ready_detail(w);
    w.EndObject();
    return absl::StatusOr<HttpResponse>(HttpResponse::Json(200, w.str()));
  }));
  GaugeFamily* partition_lag =
      opts->partition_lag
          ? metrics.AddGaugeFamily("freshet_consumer_partition_lag_messages",
                                   "Kafka messages not yet consumed, by assigned partition",
                                   {"topic", "partition"})
          : nullptr;
  // Which backend serves and learns; 1 for the current combination (fixed for the process).
  {
    const engine::ModelInfo info = engine.model().info();
    metrics
        .AddGaugeFamily("freshet_compute_backend_info",
                        "compute backend in use (requested, chosen, where the model learns, and "
                        "why: e.g. auto falling back to the CPU)",
                        {"requested", "backend", "learning", "note"})
        ->WithLabels({opts->backend_requested, info.backend, info.learning, opts->backend_note})
        ->Set(1);
  }
  metrics.AddCallbackGauge("freshet_device_fallbacks",
                           "micro-batches the GPU failed and the host learnt instead",
                           [e] { return static_cast<double>(e->stats().device_fallbacks); });
  if (opts->config.replica_world_size > 1) {
    metrics.AddCallbackGauge("freshet_replica_exchanges",
                             "item-model exchanges with the other replicas",
                             [e] { return static_cast<double>(e->stats().replica_exchanges); });
    metrics.AddCallbackGauge("freshet_replica_rows_received",
                             "item rows received from the other replicas",
                             [e] { return static_cast<double>(e->stats().replica_rows_received); });
    metrics.AddCallbackGauge("freshet_replica_items_added",
                             "items first met through the other replicas",
                             [e] { return static_cast<double>(e->stats().replica_items_added); });
    metrics.AddCallbackGauge(
        "freshet_replica_last_exchange_seconds",
        "wall time of the latest exchange, waiting for the other replicas included",
        [e] { return e->stats().replica_last_exchange_ms / 1000.0; });
  }
  FRESHET_RETURN_IF_ERROR(
      server.Handle("GET", "/metrics", [&metrics, opts, partition_lag](const HttpRequest&) {
        if (partition_lag != nullptr) {
          for (const auto& [topic, partition, lag] : opts->partition_lag()) {
            partition_lag->WithLabels({topic, absl::StrCat(partition)})
                ->Set(static_cast<double>(lag));
          }
        }
        return absl::StatusOr<HttpResponse>(HttpResponse::Text(
            200, metrics.RenderText(), "text/plain; version=0.0.4; charset=utf-8"));
      }));

  // --- Admin.
  auto admin = [opts](HttpHandler handler) -> HttpHandler {
    return [opts,
            handler = std::move(handler)](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
      if (auto denied = CheckBearerToken(req, opts->admin_token)) return *denied;
      return handler(req);
    };
  };
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "GET", "/admin/snapshots", admin([e](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        FRESHET_ASSIGN_OR_RETURN(auto all, e->ListSnapshots());
        JsonWriter w;
        w.BeginArray();
        for (const auto& m : all) WriteManifest(w, m);
        w.EndArray();
        return JsonOk(w);
      })));
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "POST", "/admin/snapshots",
      admin([e](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        const std::string* id = req.Query("id");
        FRESHET_ASSIGN_OR_RETURN(auto m, e->CreateSnapshot(id != nullptr ? *id : ""));
        JsonWriter w;
        WriteManifest(w, m);
        return HttpResponse::Json(201, w.str());
      })));
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "GET", "/admin/snapshots/{id}",
      admin([e](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        FRESHET_ASSIGN_OR_RETURN(auto m, e->InspectSnapshot(*req.Param("id")));
        return HttpResponse::Json(200, engine::ManifestToJson(m));
      })));
  FRESHET_RETURN_IF_ERROR(
      server.HandleBlocking("DELETE", "/admin/snapshots/{id}",
                            admin([e](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
                              FRESHET_RETURN_IF_ERROR(e->DeleteSnapshot(*req.Param("id")));
                              return HttpResponse::Json(200, "{\"deleted\":true}");
                            })));
  FRESHET_RETURN_IF_ERROR(
      server.HandleBlocking("POST", "/admin/snapshots/{id}/restore",
                            admin([e](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
                              const std::string& id = *req.Param("id");
                              FRESHET_RETURN_IF_ERROR(e->RestoreSnapshot(id, absl::Seconds(120)));
                              JsonWriter w;
                              w.BeginObject().Key("restored").String(id);
                              w.Key("events_applied").Int(e->stats().events_applied);
                              w.Key("model_version").Int(e->model_version()).EndObject();
                              return JsonOk(w);
                            })));
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "PUT", "/admin/items/{item}/availability",
      admin([e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        FRESHET_RETURN_IF_ERROR(CheckId("the item id", *req.Param("item"), opts->config));
        // Body: {"available": false} hides the item; true shows it again.
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        bool available = true;
        if (parser.parse(req.body.data(), req.body.size()).get(doc) != simdjson::SUCCESS ||
            doc["available"].get_bool().get(available) != simdjson::SUCCESS) {
          return absl::InvalidArgumentError("body must be {\"available\": true|false}");
        }
        FRESHET_RETURN_IF_ERROR(e->SetItemHidden(*req.Param("item"), !available));
        JsonWriter w;
        w.BeginObject()
            .Key("item")
            .String(*req.Param("item"))
            .Key("available")
            .Bool(available)
            .EndObject();
        return JsonOk(w);
      })));
  // Body: catalog entries as JSON lines ({"item": "50", "title": "...", "category": "Drama"});
  // given fields replace the item's, empty ones remove them.
  FRESHET_RETURN_IF_ERROR(server.HandleBlocking(
      "PUT", "/admin/catalog",
      admin([e, opts](const HttpRequest& req) -> absl::StatusOr<HttpResponse> {
        engine::CatalogParseStats stats;
        FRESHET_ASSIGN_OR_RETURN(
            std::vector<engine::CatalogEntry> entries,
            engine::ParseCatalog(
                req.body, engine::CatalogFormat::kJsonLines,
                [opts](absl::string_view id) { return CheckId("the item id", id, opts->config); },
                &stats));
        FRESHET_ASSIGN_OR_RETURN(const int64_t changed, e->UpsertCatalog(entries));
        JsonWriter w;
        w.BeginObject().Key("entries").Int(static_cast<int64_t>(entries.size()));
        w.Key("changed").Int(changed).Key("malformed").Int(stats.malformed);
        w.Key("errors").BeginArray();
        for (const std::string& error : stats.first_errors) w.String(error);
        w.EndArray().Key("catalog_items").Int(static_cast<int64_t>(e->catalog().size()));
        w.EndObject();
        return JsonOk(w);
      })));
  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/admin/items/hidden", admin([e](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        JsonWriter w;
        w.BeginArray();
        for (const std::string& id : e->HiddenItems()) w.String(id);
        w.EndArray();
        return JsonOk(w);
      })));
  // The whole item state, for a serving replica starting with --bootstrap (engine/follower/).
  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/admin/model/items", admin([e](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        const int64_t now_ns = absl::ToUnixNanos(absl::Now());
        std::string body = e->WithLearner([now_ns](const learner::Learner& learner) {
          return engine::ExportItemState(learner, now_ns);
        });
        return HttpResponse::Text(200, std::move(body), "application/octet-stream");
      })));
  FRESHET_RETURN_IF_ERROR(server.Handle(
      "GET", "/admin/config", admin([opts](const HttpRequest&) -> absl::StatusOr<HttpResponse> {
        return HttpResponse::Text(200, config::ToToml(opts->config), "application/toml");
      })));

  // --- Engine gauges, evaluated at scrape time.
  metrics.AddCallbackGauge("freshet_events_applied", "events learnt",
                           [e] { return static_cast<double>(e->stats().events_applied); });
  metrics.AddCallbackGauge("freshet_events_malformed", "input records skipped as malformed",
                           [e] { return static_cast<double>(e->stats().events_malformed); });
  metrics.AddCallbackGauge("freshet_events_duplicate",
                           "re-delivered events dropped by the exactly-once filter",
                           [e] { return static_cast<double>(e->stats().duplicates_dropped); });
  metrics.AddCallbackGauge(
      "freshet_events_repeated_id",
      "events dropped because an event with the same id (idempotency key) was applied before",
      [e] { return static_cast<double>(e->stats().duplicate_ids_dropped); });
  metrics.AddCallbackGauge("freshet_idempotency_keys",
                           "event ids remembered (at most events.idempotency_keys)",
                           [e] { return static_cast<double>(e->stats().idempotency_keys); });
  metrics.AddCallbackGauge("freshet_events_filtered",
                           "events of ids not yet admitted (memory.admit_min_events)",
                           [e] { return static_cast<double>(e->stats().events_filtered); });
  metrics.AddCallbackGauge(
      "freshet_events_rejected",
      "events the learner refused: weight not finite or outside [0, events.max_weight], or ts "
      "outside 1970-2100 (the decoders count theirs as malformed)",
      [e] { return static_cast<double>(e->stats().events_rejected); });
  metrics.AddCallbackGauge("freshet_nonfinite_skips",
                           "events whose model update was skipped because it was not finite",
                           [e] { return static_cast<double>(e->stats().nonfinite_skips); });
  metrics.AddCallbackGauge("freshet_events_persisted", "events included in the stored state", [e] {
    return static_cast<double>(e->stats().persister.events_persisted);
  });
  metrics.AddCallbackGauge("freshet_store_write_errors", "failed state store writes (retried)",
                           [e] { return static_cast<double>(e->stats().persister.write_errors); });
  metrics.AddCallbackGauge("freshet_store_healthy",
                           "1 while the state store accepts writes, 0 while they fail",
                           [e] { return e->stats().persister.healthy ? 1.0 : 0.0; });
  metrics.AddCallbackGauge("freshet_store_seconds_since_write",
                           "seconds since the latest successful state store write",
                           [e] { return e->stats().persister.since_last_write_s; });
  metrics.AddCallbackGauge("freshet_model_version", "version of the latest state batch",
                           [e] { return static_cast<double>(e->model_version()); });
  metrics.AddCallbackGauge("freshet_users", "users in the model",
                           [e] { return static_cast<double>(e->stats().users); });
  // Freshness: an event's arrival (its Kafka message's timestamp, a POST) to its being learnt.
  Histogram* freshness = metrics.AddHistogram(
      "freshet_freshness_seconds",
      "wall time from an event's arrival (Kafka message timestamp, POST) to its being learnt",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  e->SetFreshnessObserver([freshness](double seconds) { freshness->Observe(seconds); });
  metrics.AddCallbackGauge("freshet_catalog_items", "items with a catalog entry",
                           [e] { return static_cast<double>(e->catalog().size()); });
  metrics.AddCallbackGauge("freshet_catalog_bytes", "memory held by the item catalog",
                           [e] { return static_cast<double>(e->catalog().MemoryBytes()); });
  metrics.AddCallbackGauge("freshet_items", "items in the model",
                           [e] { return static_cast<double>(e->stats().items); });
  metrics.AddCallbackGauge("freshet_last_applied_age_seconds",
                           "seconds since an event was last learnt (-1: none yet)",
                           [e] { return e->stats().last_applied_ago_s; });
  metrics.AddCallbackGauge("freshet_scoring_batches", "batched top-K passes over the items",
                           [e] { return static_cast<double>(e->stats().scoring_batches); });
  metrics.AddCallbackGauge("freshet_scoring_batched_queries",
                           "recommendation queries answered by batched passes",
                           [e] { return static_cast<double>(e->stats().scoring_queries); });
  metrics.AddCallbackGauge(
      "freshet_scoring_item_groups_packed",
      "groups of 64 item rows copied into the packed scoring layout (serve.packed_items)",
      [e] { return static_cast<double>(e->stats().scoring_groups_packed); });
  metrics.AddCallbackGauge("freshet_resident_memory_bytes", "resident set size of the process",
                           [] { return ResidentBytes(); });
  if (opts->consumer_lag) {
    metrics.AddCallbackGauge("freshet_consumer_lag_messages",
                             "Kafka messages not yet consumed, summed over assigned partitions",
                             [opts] { return static_cast<double>(opts->consumer_lag()); });
  }
  return absl::OkStatus();
}

}  // namespace freshet::serving
