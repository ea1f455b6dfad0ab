#include "config/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

// Debian ships toml++ as a shared library built with exceptions; parse errors are caught here
// and become a Status, so no exception leaves this file.
#include <toml++/toml.h>

namespace freshet::config {
namespace {

// Registry entry: how to read and write one key. Ranges are checked on write.
struct KeyImpl {
  ConfigKey key;
  std::function<std::string(const Config&)> get;
  std::function<absl::Status(Config*, absl::string_view)> set;
};

// Shortest text that reads back as the same value of the member's own type (0.1f prints "0.1").
template <typename T>
std::string FormatFloat(T v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos && s.find("inf") == std::string::npos) s += ".0";
  return s;
}

absl::Status OutOfRange(absl::string_view key, absl::string_view value, absl::string_view range) {
  return absl::InvalidArgumentError(
      absl::StrCat("config key '", key, "': value ", value, " is out of range (", range, ")"));
}

template <typename T>
KeyImpl IntKey(const char* name, T Config::*member, int64_t lo, int64_t hi, const char* help) {
  return KeyImpl{{name, "int", help},
                 [member](const Config& c) { return absl::StrCat(c.*member); },
                 [=](Config* c, absl::string_view text) -> absl::Status {
                   int64_t v = 0;
                   if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) {
                     return absl::InvalidArgumentError(absl::StrCat(
                         "config key '", name, "' needs an integer, got '", text, "'"));
                   }
                   if (v < lo || v > hi) return OutOfRange(name, text, absl::StrCat(lo, "..", hi));
                   c->*member = static_cast<T>(v);
                   return absl::OkStatus();
                 }};
}

template <typename T>
KeyImpl FloatKey(const char* name, T Config::*member, double lo, double hi, const char* help) {
  return KeyImpl{
      {name, "float", help},
      [member](const Config& c) { return FormatFloat(c.*member); },
      [=](Config* c, absl::string_view text) -> absl::Status {
        double v = 0;
        if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &v) || !std::isfinite(v)) {
          return absl::InvalidArgumentError(
              absl::StrCat("config key '", name, "' needs a number, got '", text, "'"));
        }
        if (v < lo || v > hi) return OutOfRange(name, text, absl::StrCat(lo, "..", hi));
        c->*member = static_cast<T>(v);
        return absl::OkStatus();
      }};
}

KeyImpl BoolKey(const char* name, bool Config::*member, const char* help) {
  return KeyImpl{{name, "bool", help},
                 [member](const Config& c) { return std::string(c.*member ? "true" : "false"); },
                 [=](Config* c, absl::string_view text) -> absl::Status {
                   if (text == "true" || text == "false") {
                     c->*member = text == "true";
                     return absl::OkStatus();
                   }
                   return absl::InvalidArgumentError(absl::StrCat(
                       "config key '", name, "' must be true or false; got '", text, "'"));
                 }};
}

KeyImpl StringKey(const char* name, std::string Config::*member, const char* help) {
  return KeyImpl{
      {name, "string", help},
      [member](const Config& c) { return c.*member; },
      [=](Config* c, absl::string_view text) -> absl::Status {
        if (text.find_first_of("\"\\\n") != absl::string_view::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              "config key '", name, "' must not contain quotes, backslashes or newlines"));
        }
        c->*member = std::string(text);
        return absl::OkStatus();
      }};
}

KeyImpl SecretKey(KeyImpl key) {
  key.key.secret = true;
  return key;
}

KeyImpl ChoiceKey(const char* name, std::string Config::*member, std::vector<std::string> choices,
                  const char* help) {
  return KeyImpl{{name, "string", help},
                 [member](const Config& c) { return c.*member; },
                 [=](Config* c, absl::string_view text) -> absl::Status {
                   for (const std::string& choice : choices) {
                     if (text == choice) {
                       c->*member = choice;
                       return absl::OkStatus();
                     }
                   }
                   return absl::InvalidArgumentError(
                       absl::StrCat("config key '", name, "' must be one of ",
                                    absl::StrJoin(choices, ", "), "; got '", text, "'"));
                 }};
}

const std::vector<KeyImpl>& Registry() {
  static const std::vector<KeyImpl>* registry = new std::vector<KeyImpl>{
      IntKey("model.dim", &Config::dim, 1, 1024, "embedding dimension d"),
      IntKey("model.seed", &Config::seed, 0, std::numeric_limits<int64_t>::max(),
             "seed of every random choice (initialisation, negative sampling)"),
      FloatKey("model.init_std", &Config::init_std, 0, 10,
               "standard deviation of a new vector's entries"),
      IntKey("history.max_items", &Config::history_max_items, 1, 1 << 20,
             "distinct items remembered per user for exclude-seen; the oldest is dropped"),
      IntKey("history.recent", &Config::history_recent, 1, 4096,
             "latest interactions kept in order per user (short-term context)"),
      FloatKey(
          "memory.user_ttl_s", &Config::user_ttl_s, 0, 1e12,
          "forget users (memory and store) whose latest event is older than this, in event-time "
          "seconds; 0 keeps every user"),
      IntKey("memory.admit_min_events", &Config::admit_min_events, 1, 255,
             "new users and items join the model on their n-th event (approximate count); 1 admits "
             "at once"),
      IntKey("memory.max_state_mb", &Config::max_state_mb, 0, 1 << 30,
             "a stored or followed state whose row counts would take more memory than this (MiB) "
             "is refused as corrupt instead of allocated; 0: this machine's memory"),
      FloatKey("popularity.half_life_s", &Config::popularity_half_life_s, 0, 1e12,
               "half-life of popularity counts in seconds; 0 counts all time equally"),
      ChoiceKey("popularity.new_users", &Config::popularity_new_users, {"first", "all"},
                "what users freshet has not seen get: first, the items other users took at their "
                "first event (with 50 first events' worth of all-time popularity mixed in, which "
                "matters while few users have arrived); all, all-time popularity. The popularity "
                "model ranks everyone by all-time popularity either way"),
      ChoiceKey("bpr.loss", &Config::bpr_loss, {"softmax", "bpr"},
                "softmax: sampled softmax with logQ correction; bpr: pairwise logistic"),
      IntKey("bpr.negatives", &Config::bpr_negatives, 1, 1024, "negatives sampled per event"),
      FloatKey("bpr.negative_alpha", &Config::bpr_negative_alpha, 0, 2,
               "negatives are drawn with probability proportional to popularity^alpha"),
      FloatKey("bpr.lr", &Config::bpr_lr, 0, 100, "row-wise Adagrad learning rate"),
      FloatKey("bpr.l2", &Config::bpr_l2, 0, 100,
               "weight decay of the rows an event touches (scaled by their step size)"),
      IntKey("bpr.window", &Config::bpr_window, 0, 256,
             "latest items forming the short-term user vector (0 disables it)"),
      FloatKey("bpr.window_decay", &Config::bpr_window_decay, 0, 1,
               "weight of the item k steps back in the short-term vector = decay^k"),
      FloatKey("bpr.short_term_weight", &Config::bpr_short_term_weight, 0, 100,
               "weight of the short-term vector in the user query"),
      FloatKey("bpr.long_term_weight", &Config::bpr_long_term_weight, 0, 100,
               "weight of the long-term user vector in the user query"),
      BoolKey("bpr.tied_context", &Config::bpr_tied_context,
              "build the short-term vector from the items' own embeddings (read only) instead of "
              "separate context embeddings trained on every event"),
      IntKey("bpr.replay", &Config::bpr_replay, 0, 64,
             "after each event, steps on this many earlier events drawn from the latest 65,536, "
             "for their items only (host learning)"),
      FloatKey("ials.reg", &Config::ials_reg, 0, 1e6, "L2 regularisation of user and item vectors"),
      FloatKey("ials.unobserved", &Config::ials_unobserved, 0, 1e6,
               "weight of every unobserved user-item pair (through the cached Gramian)"),
      FloatKey("ials.confidence", &Config::ials_confidence, 0, 1e6,
               "an observed pair's weight is 1 + confidence * recency weight"),
      IntKey("ials.window", &Config::ials_window, 1, 4096,
             "latest items of a user (and users of an item) each fold-in uses"),
      FloatKey("ials.window_decay", &Config::ials_window_decay, 0, 1,
               "recency weight of the item k steps back = decay^k"),
      FloatKey("ials.long_term", &Config::ials_long_term, 0, 1e6,
               "pull of a vector towards its previous value (the long-term part)"),
      IntKey("ials.cg_steps", &Config::ials_cg_steps, 0, 1024,
             "conjugate-gradient steps per fold-in, warm-started; 0 solves exactly (Cholesky)"),
      FloatKey("ials.popularity_weight", &Config::ials_popularity_weight, 0, 1e6,
               "weight of the popularity prior log(1 + interactions of the item) added to every "
               "score: what ranks the items of users with few events"),
      IntKey("cooc.window", &Config::cooc_window, 1, 256,
             "latest items of a user that co-occur with each new item"),
      FloatKey("cooc.decay", &Config::cooc_decay, 0, 1,
               "weight of the neighbour k steps back = decay^k"),
      FloatKey("cooc.popularity_weight", &Config::cooc_popularity_weight, 0, 1e6,
               "weight of log(1 + popularity) added to every co-occurrence score"),
      FloatKey("cooc.norm_exponent", &Config::cooc_norm_exponent, 0, 2,
               "co-occurrence of i and j is divided by (count_i * count_j)^exponent"),
      IntKey("cooc.max_pairs", &Config::cooc_max_pairs, 1000, int64_t{1} << 40,
             "stored pairs beyond which the weakest are pruned"),
      FloatKey("cooc.session_gap_s", &Config::cooc_session_gap_s, 0, 1e12,
               "a user's events further apart than this (event-time seconds) are in different "
               "sessions and do not co-occur; 0: no sessions"),
      FloatKey("cooc.user_exponent", &Config::cooc_user_exponent, 0, 2,
               "an event pairs its item with the user's n latest items (at most cooc.window), "
               "each pair weighing the event's weight / n^exponent: 0 counts every pair alike, "
               "1 gives each event the same total whatever the user's history"),
      FloatKey("hybrid.cooc_weight", &Config::hybrid_cooc_weight, 0, 1e6,
               "weight of the cooc score beside the bpr score in the hybrid model"),
      StringKey(
          "blend.features", &Config::blend_features,
          "components the blend scores with, comma-separated: bpr, cooc, history (cooc over "
          "the whole recent history), transitions, popularity (all-time), trending (recent "
          "popularity), last (cooc from the latest item alone), long_term (bpr's long-term "
          "user vector alone), profile (co-occurrence within whole recent histories, across "
          "sessions), ials (the ials embedding model), ease (EASE item-item weights fitted to the "
          "profile table), topics (the popular items of the groups of a user's recent items, "
          "items grouped by spectral clustering of its own pair table, "
          "blend.topics_user_exponent)"),
      FloatKey("blend.history_decay", &Config::blend_history_decay, 0, 1,
               "weight of the co-occurrences of the history item k steps back = decay^k"),
      IntKey("blend.transition_window", &Config::blend_transition_window, 1, 64,
             "latest items of a user whose observed next items are scored"),
      FloatKey("blend.transition_decay", &Config::blend_transition_decay, 0, 1,
               "weight of the transitions from the item k steps back = decay^k"),
      FloatKey("blend.trending_half_life", &Config::blend_trending_half_life, 1, 1e12,
               "events (of the whole stream) over which an item's trending count halves"),
      FloatKey("blend.lr", &Config::blend_lr, 0, 1e3,
               "Adagrad learning rate of the blend weights (0 keeps the initial weights)"),
      IntKey("blend.warmup_events", &Config::blend_warmup_events, 0, int64_t{1} << 40,
             "the ranker takes a step on every one of the stream's first events"),
      IntKey("blend.train_cost", &Config::blend_train_cost, 0, 1 << 30,
             "after the warm-up: item scorings per event spent on ranker steps (a step scores "
             "the catalog, or blend.sample items, so full steps come every catalog / train_cost "
             "events)"),
      IntKey("blend.sample", &Config::blend_sample, 0, 1 << 20,
             "uniform draws per ranker step: a step scores the event's item, the best "
             "blend.sample_top items of each sparse component (cooc, history, transitions, last, "
             "profile) and this many draws standing in for the rest of the catalog "
             "(importance-weighted), and costs that many item scorings; 0: a step scores the "
             "whole catalog"),
      IntKey("blend.sample_top", &Config::blend_sample_top, 0, 1 << 20,
             "best items of each sparse component always scored in a sampled ranker step"),
      IntKey("blend.cold_events", &Config::blend_cold_events, 0, 64,
             "users with fewer earlier events than this are scored with a second set of "
             "weights added to the shared ones, learnt from their events only; 0: one set"),
      BoolKey("blend.session_start", &Config::blend_session_start,
              "users whose latest event is more than cooc.session_gap_s ago (a new or returning "
              "user) are scored with a further set of weights added to the shared ones, learnt "
              "from the events that start a session only (none without sessions, "
              "cooc.session_gap_s = 0)"),
      BoolKey("blend.context_steps", &Config::blend_context_steps,
              "the ranker steps on every event whose user takes the cold or the session-start "
              "weights (blend.cold_events, blend.session_start), outside blend.train_cost: those "
              "sets learn from such events alone, which are few"),
      BoolKey("blend.learn_repeats", &Config::blend_learn_repeats,
              "the ranker also learns from events whose item is among the user's latest "
              "history.recent items; off, it learns only what a request excluding the items a "
              "user has (exclude_seen, the default) can be answered with"),
      ChoiceKey("blend.sparse_transform", &Config::blend_sparse_transform, {"linear", "log"},
                "scores of the sparse components (cooc, history, transitions, last, profile) "
                "and of topics before they are scaled: linear, or log (log(1 + x / mean of "
                "the positive scores))"),
      ChoiceKey("blend.sparse_scale", &Config::blend_sparse_scale, {"none", "sd"},
                "those scores enter the blend as they are (none), or divided by their standard "
                "deviation over the catalog for each query (sd), which grows as a user's lists "
                "get shorter: a few pairs seen once would outweigh every other component"),
      IntKey("blend.ease_items", &Config::blend_ease_items, 2, 8192,
             "the ease component fits its item-item weights over this many items, those with "
             "the most interactions (a fit costs the cube of this in time and 16 times its "
             "square in bytes)"),
      FloatKey("blend.ease_lambda", &Config::blend_ease_lambda, 1e-3, 1e12,
               "ridge term added to the diagonal of the ease component's Gramian"),
      IntKey("blend.ease_refit", &Config::blend_ease_refit, 1, 1 << 30,
             "events between two fits of the ease and topics components (and one when a state "
             "is loaded)"),
      BoolKey("blend.ease_for_cold_users", &Config::blend_ease_for_cold_users,
              "the ease component also scores users with fewer than blend.cold_events earlier "
              "events; off, it weighs 0 for them and learns its weight from the others' events "
              "only (it reads a user's history as a long-term profile, which such users lack)"),
      IntKey("blend.topics", &Config::blend_topics, 1, 256,
             "groups the topics component cuts the catalog into (fewer while fewer items are "
             "counted)"),
      IntKey("blend.topics_items", &Config::blend_topics_items, 2, 8192,
             "the topics component groups this many items by spectral clustering, those with the "
             "most interactions, and every other item by its neighbours (a fit costs the square "
             "of this times blend.topics in time and 16 times its square in bytes)"),
      FloatKey("blend.topics_prior", &Config::blend_topics_prior, 0, 1e6,
               "the topics component draws a user's mixture of groups towards popularity as if "
               "they had this many more items, spread over the groups by popularity"),
      FloatKey("blend.profile_user_exponent", &Config::blend_profile_user_exponent, 0, 2,
               "cooc.user_exponent of the profile table (which the ease component is fitted to, "
               "and topics where its table's settings are the same): above 0, a user's long "
               "history adds less per event than a short one (on MovieLens 100K, 0.5 ranks "
               "lower)"),
      FloatKey("blend.topics_user_exponent", &Config::blend_topics_user_exponent, 0, 2,
               "cooc.user_exponent of the pair table the topics component is fitted to: above 0, "
               "a user's long history adds less per event than a short one"),
      IntKey("blend.topics_window", &Config::blend_topics_window, 1, 4096,
             "that table pairs an event's item with the user's latest this many items (at most "
             "history.recent)"),
      BoolKey("blend.topics_unit_weights", &Config::blend_topics_unit_weights,
              "in that table an event counts 1 whatever its weight (which consumes what, not how "
              "strongly); off, it counts its weight. Where the table's three settings are the "
              "profile table's (blend.profile_user_exponent, history.recent, off), topics is "
              "fitted to the profile table; otherwise it has a table of its own"),
      FloatKey("events.default_weight", &Config::default_weight, 0, 1e6,
               "weight of an event whose type has no entry in [events.types]"),
      FloatKey("events.max_weight", &Config::max_event_weight, 0, 1e6,
               "heaviest event accepted (its weight, or its type's); heavier events are "
               "rejected and counted as malformed, on every path (files, Kafka, HTTP)"),
      IntKey("events.max_id_bytes", &Config::max_id_bytes, 1, 65536,
             "longest user, item, type or event id accepted, in bytes; longer ones are rejected"),
      IntKey("events.idempotency_keys", &Config::idempotency_keys, 0, int64_t{1} << 28,
             "event ids (the \"id\" field, or POST /v1/events' Idempotency-Key) the server "
             "remembers: an event whose id is among the last this many applied is dropped as a "
             "repeat; 0 turns the check off"),
      IntKey("replay.k", &Config::replay_k, 1, 10000, "K of Recall@K, NDCG@K, MRR@K"),
      IntKey("replay.windows", &Config::replay_windows, 1, 10000,
             "number of equal slices of the stream reported in the report's windows"),
      ChoiceKey("kernels.backend", &Config::backend, {"cpu", "cuda", "auto"},
                "compute backend: cpu, cuda (error without a GPU) or auto (cuda if usable)"),
      IntKey("kernels.micro_batch", &Config::micro_batch, 0, 1 << 20,
             "bpr events per learning micro-batch: 0 = 256 on a GPU, one at a time on the CPU; "
             "N on the CPU runs the GPU's micro-batch semantics on the host (for comparisons)"),
      IntKey("kernels.gpus", &Config::gpus, 1, 64,
             "GPUs in this process learning bpr together (item deltas summed over NCCL)"),
      IntKey("kernels.gpu_sync_every_batches", &Config::gpu_sync_every_batches, 0, 1 << 20,
             "with several GPUs: sync the item model every N micro-batches (0: by time only)"),
      IntKey("kernels.gpu_sync_ms", &Config::gpu_sync_ms, 0, 3600000,
             "with several GPUs: sync the item model at least this often (0: by count only)"),
      IntKey("replicas.world_size", &Config::replica_world_size, 1, 1024,
             "engine processes learning one bpr item model together, each from its share of the "
             "Kafka partitions; 1: alone"),
      ChoiceKey("replicas.transport", &Config::replica_transport, {"auto", "nccl", "kafka"},
                "how the replicas exchange: nccl (between GPUs, one per process), kafka (a topic "
                "on --brokers, between CPU-only nodes), or auto (nccl on the cuda backend)"),
      IntKey(
          "replicas.rank", &Config::replica_rank, 0, 1023,
          "this process's rank in [0, world_size): it consumes partitions p % world_size == rank"),
      StringKey("replicas.rendezvous", &Config::replica_rendezvous,
                "where the ranks meet, new for each launch of the group (e.g. hold a job id): for "
                "nccl a file path every rank can read or redis://HOST:PORT/KEY (rank 0 publishes "
                "the NCCL id there), for kafka the exchange topic"),
      IntKey("replicas.sync_ms", &Config::replica_sync_ms, 1, 3600000,
             "the replicas exchange their item-model changes this often"),
      IntKey(
          "replicas.timeout_ms", &Config::replica_timeout_ms, 100, 86400000,
          "longest wait for the other ranks (the rendezvous, every exchange); then this one stops "
          "with an error"),
      IntKey("store.flush_interval_ms", &Config::flush_interval_ms, 1, 3600000,
             "dirty rows and the source positions they include are written together this often "
             "(a crash loses nothing: the sources deliver again what the latest write lacks)"),
      IntKey("store.direct_flush_interval_ms", &Config::direct_flush_interval_ms, 1, 3600000,
             "once events were posted to a server without a broker (no source can deliver them "
             "again), the next write comes this long after the latest one; a crash before then "
             "loses them"),
      BoolKey("store.sync", &Config::store_sync,
              "fsync every write: survives power loss, not only a process crash (slower)"),
      BoolKey("store.accept_wal_loss", &Config::store_accept_wal_loss,
              "start from the state before the first corrupt write-ahead-log record, dropping "
              "what follows it (counted in a warning), instead of refusing to start; for one "
              "start after a corruption, with --set"),
      IntKey("serve.batch_events", &Config::serve_batch_events, 1, 1 << 20,
             "most events learnt per micro-batch between reads of the sources"),
      StringKey("serve.bind", &Config::serve_bind,
                "address the HTTP server listens on (loopback unless told otherwise)"),
      IntKey("serve.port", &Config::serve_port, 0, 65535, "HTTP port; 0 picks a free one"),
      IntKey("serve.io_threads", &Config::serve_io_threads, 0, 256,
             "HTTP I/O threads; 0: half the processor's cores, 1 to 8 (the scoring and learning "
             "threads need the rest)"),
      IntKey("serve.max_in_flight", &Config::serve_max_in_flight, 1, 1 << 20,
             "requests in progress beyond which the server answers 503 with Retry-After"),
      SecretKey(StringKey("serve.admin_token", &Config::serve_admin_token,
                          "bearer token required by /admin routes; empty disables them. Secret: "
                          "never written out; prefer FRESHET_ADMIN_TOKEN or admin_token_file")),
      StringKey("serve.admin_token_file", &Config::serve_admin_token_file,
                "file whose first line is the admin token (instead of admin_token)"),
      IntKey("serve.max_connections", &Config::serve_max_connections, 0, 1 << 20,
             "open HTTP connections; at the cap the longest-idle one is closed, or a new one is "
             "answered 503; 0: half of the file-descriptor limit left after 512 for the store"),
      IntKey("serve.idle_timeout_ms", &Config::serve_idle_timeout_ms, 100, 3600000,
             "keep-alive connections idle this long are closed"),
      BoolKey("serve.batch_scoring", &Config::serve_batch_scoring,
              "score concurrent recommendation requests together, one pass over the items for "
              "many queries (embedding models)"),
      BoolKey("serve.packed_items", &Config::serve_packed_items,
              "batched scoring reads a copy of the item vectors kept current row by row: int8 for "
              "an exact two-stage scan with AVX-512 VNNI, else the kernels' float layout (CPU "
              "backend; a quarter, else a whole, second copy of the vectors in memory)"),
      ChoiceKey("serve.transparent_huge_pages", &Config::serve_transparent_huge_pages,
                {"advised", "system"},
                "advised: only the embedding tables and id dictionaries get huge pages, whatever "
                "the kernel's setting (Linux >= 6.18; with 'always' on older kernels, set it to "
                "'madvise'); system: the kernel's setting decides"),
      IntKey("serve.unready_after_ms", &Config::serve_unready_after_ms, 100, 86400000,
             "/readyz answers 503 once the learning loop has made no round, or no Kafka broker "
             "has been reachable, for this long"),
      StringKey("serving_replicas.model_topic", &Config::tier_model_topic,
                "Kafka topic (one partition; cleanup.policy=compact on a real cluster) of the item "
                "model: a learner with this and redis set publishes its item rows to it, a "
                "`serve --follow` replica reads it; empty: no serving replicas"),
      StringKey("serving_replicas.redis", &Config::tier_redis,
                "redis://HOST:PORT where the learner writes each changed user's state and the "
                "replicas read it per request"),
      StringKey("serving_replicas.key_prefix", &Config::tier_key_prefix,
                "prefix of the users' Redis keys (PREFIX{user}: the user id is the hash tag)"),
      IntKey("serving_replicas.publish_ms", &Config::tier_publish_ms, 1, 60000,
             "the learner publishes changed items and users this often"),
      IntKey("serving_replicas.max_users", &Config::tier_max_users, 1, 100000000,
             "users whose state a replica keeps between requests (its answers while Redis is "
             "down)"),
      IntKey("serving_replicas.redis_timeout_ms", &Config::tier_redis_timeout_ms, 1, 60000,
             "a replica waits this long for Redis, then answers from its last copy of the user"),
      BoolKey("serving_replicas.client_cache", &Config::tier_client_cache,
              "a replica answers a user it has read from its copy, without reading Redis, until "
              "Redis says the user's state changed (CLIENT TRACKING, Redis >= 6); false: every "
              "request reads its user"),
  };
  return *registry;
}

const KeyImpl* FindKey(absl::string_view name) {
  for (const KeyImpl& k : Registry()) {
    if (k.key.name == name) return &k;
  }
  return nullptr;
}

// Levenshtein distance, to suggest the key the user probably meant.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

absl::Status UnknownKey(absl::string_view name) {
  const KeyImpl* best = nullptr;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const KeyImpl& k : Registry()) {
    const size_t d = EditDistance(name, k.key.name);
    if (d < best_distance) {
      best_distance = d;
      best = &k;
    }
  }
  std::string hint;
  if (best != nullptr && best_distance <= 4)
    hint = absl::StrCat(" (did you mean '", best->key.name, "'?)");
  return absl::InvalidArgumentError(absl::StrCat("unknown config key '", name, "'", hint));
}

constexpr absl::string_view kTypesPrefix = "events.types.";

// Text of a TOML scalar in the form SetValue accepts.
absl::StatusOr<std::string> ScalarText(const toml::node& node, absl::string_view key) {
  if (auto v = node.value<int64_t>(); v && node.is_integer()) return absl::StrCat(*v);
  if (auto v = node.value<double>(); v && node.is_floating_point()) return FormatFloat(*v);
  if (auto v = node.value<bool>(); v && node.is_boolean())
    return std::string(*v ? "true" : "false");
  if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
  return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must be a scalar value"));
}

absl::Status ApplyTable(Config* config, const toml::table& table, const std::string& prefix,
                        absl::string_view origin) {
  for (const auto& [raw_key, node] : table) {
    const std::string key = prefix.empty() ? std::string(raw_key.str())
                                           : absl::StrCat(prefix, ".", std::string(raw_key.str()));
    // `node` by an init-capture: clang 14 (scripts/thread_safety.sh) cannot capture a structured
    // binding.
    const auto where = [&, &node = node] {
      const auto& src = node.source();
      return src.begin.line > 0 ? absl::StrCat(origin, ":", src.begin.line, ": ")
                                : absl::StrCat(origin, ": ");
    };
    if (const toml::table* sub = node.as_table()) {
      FRESHET_RETURN_IF_ERROR(ApplyTable(config, *sub, key, origin));
      continue;
    }
    absl::StatusOr<std::string> text = ScalarText(node, key);
    absl::Status status = text.ok() ? SetValue(config, key, *text) : text.status();
    if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat(where(), status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey>* keys = [] {
    auto* out = new std::vector<ConfigKey>;
    for (const KeyImpl& k : Registry()) out->push_back(k.key);
    return out;
  }();
  return *keys;
}

absl::StatusOr<std::string> GetValue(const Config& config, absl::string_view key) {
  if (absl::StartsWith(key, kTypesPrefix)) {
    auto it = config.type_weights.find(key.substr(kTypesPrefix.size()));
    if (it == config.type_weights.end())
      return absl::NotFoundError(absl::StrCat("no event type '", key, "'"));
    return FormatFloat(it->second);
  }
  const KeyImpl* k = FindKey(key);
  if (k == nullptr) return UnknownKey(key);
  return k->get(config);
}

namespace {

// SetValue() without the checks across keys.
absl::Status SetUnchecked(Config* config, absl::string_view key, absl::string_view value) {
  if (absl::StartsWith(key, kTypesPrefix)) {
    const absl::string_view type = key.substr(kTypesPrefix.size());
    double w = 0;
    if (type.empty() || !absl::SimpleAtod(value, &w) || !std::isfinite(w) || w < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key '", key,
                       "' needs an event type and a non-negative weight, got '", value, "'"));
    }
    config->type_weights[std::string(type)] = static_cast<float>(w);
    return absl::OkStatus();
  }
  const KeyImpl* k = FindKey(key);
  if (k == nullptr) return UnknownKey(key);
  return k->set(config, value);
}

}  // namespace

absl::Status SetValue(Config* config, absl::string_view key, absl::string_view value) {
  // On any error *config is left as it was.
  Config changed = *config;
  FRESHET_RETURN_IF_ERROR(SetUnchecked(&changed, key, value));
  FRESHET_RETURN_IF_ERROR(Validate(changed));
  *config = std::move(changed);
  return absl::OkStatus();
}

absl::Status ApplyOverrides(Config* config, const std::vector<std::string>& assignments) {
  // The checks across keys run once all are set, so overrides that are only valid together
  // (history.recent below ials.window, and ials.window lowered) work in any order.
  Config changed = *config;
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("override '", a, "' must look like key=value (e.g. bpr.lr=0.05)"));
    }
    FRESHET_RETURN_IF_ERROR(SetUnchecked(&changed, absl::StripAsciiWhitespace(a.substr(0, eq)),
                                         absl::StripAsciiWhitespace(a.substr(eq + 1))));
  }
  FRESHET_RETURN_IF_ERROR(Validate(changed));
  *config = std::move(changed);
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(absl::string_view toml_text, absl::string_view origin) {
  toml::table table;
  try {
    table = toml::parse(std::string_view(toml_text.data(), toml_text.size()),
                        std::string_view(origin.data(), origin.size()));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", err.source().begin.line, ": ", std::string(err.description())));
  }
  Config config;
  FRESHET_RETURN_IF_ERROR(ApplyTable(&config, table, "", origin));
  FRESHET_RETURN_IF_ERROR(Validate(config));
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open config file '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseConfig(buffer.str(), path);
}

absl::Status Validate(const Config& config) {
  if (config.history_recent < config.bpr_window || config.history_recent < config.ials_window ||
      config.history_recent < config.cooc_window) {
    return absl::InvalidArgumentError(
        absl::StrCat("history.recent (", config.history_recent,
                     ") must be at least bpr.window, ials.window and cooc.window (",
                     config.bpr_window, ", ", config.ials_window, ", ", config.cooc_window, ")"));
  }
  // A type weight above the bound would reject every event of that type.
  if (config.default_weight > config.max_event_weight) {
    return absl::InvalidArgumentError(absl::StrCat("events.default_weight (", config.default_weight,
                                                   ") is above events.max_weight (",
                                                   config.max_event_weight, ")"));
  }
  for (const auto& [type, weight] : config.type_weights) {
    // An event's type is at most events.max_id_bytes long: a longer name could never apply, and a
    // name that long is a mistake (the start is enough to find it).
    if (type.size() > static_cast<size_t>(config.max_id_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("events.types: a type name of ", type.size(), " bytes (\"",
                       absl::CHexEscape(absl::string_view(type).substr(0, 32)),
                       "...\") is longer than events.max_id_bytes (", config.max_id_bytes,
                       "): no event can carry it"));
    }
    if (weight > config.max_event_weight) {
      return absl::InvalidArgumentError(absl::StrCat("events.types.", type, " = ", weight,
                                                     " is above events.max_weight (",
                                                     config.max_event_weight, ")"));
    }
  }
  return absl::OkStatus();
}

std::string ToToml(const Config& config) {
  std::string out;
  std::string section;
  for (const KeyImpl& k : Registry()) {
    const size_t dot = k.key.name.find('.');
    const std::string sec = k.key.name.substr(0, dot);
    if (sec != section) {
      absl::StrAppend(&out, out.empty() ? "" : "\n", "[", sec, "]\n");
      section = sec;
    }
    std::string value = k.get(config);
    if (k.key.secret && !value.empty()) {
      // Written as unset, so that the text reads back, with a note that a value exists.
      absl::StrAppend(&out, "# ", k.key.help, "\n# (set, not shown)\n", k.key.name.substr(dot + 1),
                      " = \"\"\n");
      continue;
    }
    if (k.key.type == "string") value = absl::StrCat("\"", value, "\"");
    absl::StrAppend(&out, "# ", k.key.help, "\n", k.key.name.substr(dot + 1), " = ", value, "\n");
  }
  absl::StrAppend(&out, "\n[events.types]\n");
  std::vector<std::pair<std::string, float>> types(config.type_weights.begin(),
                                                   config.type_weights.end());
  std::sort(types.begin(), types.end());
  for (const auto& [type, w] : types) absl::StrAppend(&out, type, " = ", FormatFloat(w), "\n");
  return out;
}

int ServeIoThreads(const Config& config) {
  if (config.serve_io_threads > 0) return config.serve_io_threads;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u));
}

bool BlendNamesFeature(const Config& config, absl::string_view feature) {
  for (absl::string_view name : absl::StrSplit(config.blend_features, ',')) {
    if (absl::StripAsciiWhitespace(name) == feature) return true;
  }
  return false;
}

bool BlendTopicsOwnTable(const Config& config) {
  const bool same = config.blend_topics_user_exponent == config.blend_profile_user_exponent &&
                    config.blend_topics_window >= config.history_recent &&
                    !config.blend_topics_unit_weights;
  return !same && BlendNamesFeature(config, "topics");
}

std::vector<std::string> CountingChanges(absl::string_view algorithm, const Config& before,
                                         const Config& now) {
  std::vector<absl::string_view> keys;
  const bool cooc_table = algorithm == "cooc" || algorithm == "hybrid" ||
                          (algorithm == "blend" &&
                           (BlendNamesFeature(now, "cooc") || BlendNamesFeature(now, "history") ||
                            BlendNamesFeature(now, "last")));
  if (cooc_table) {
    keys.insert(keys.end(),
                {"cooc.window", "cooc.decay", "cooc.session_gap_s", "cooc.user_exponent"});
  }
  if (algorithm == "blend") {
    const bool topics = BlendNamesFeature(now, "topics");
    const bool own_table = BlendTopicsOwnTable(now);
    const bool profile_table = BlendNamesFeature(now, "profile") ||
                               BlendNamesFeature(now, "ease") || (topics && !own_table);
    const bool transitions = BlendNamesFeature(now, "transitions");
    // Sessions end transitions' pairs (and the session-start weight set's context).
    if (!cooc_table && (transitions || now.blend_session_start)) {
      keys.push_back("cooc.session_gap_s");
    }
    if (profile_table || own_table) keys.push_back("history.recent");
    if (transitions) keys.insert(keys.end(), {"blend.transition_window", "blend.transition_decay"});
    if (profile_table) keys.push_back("blend.profile_user_exponent");
    if (own_table) {
      keys.insert(keys.end(), {"blend.topics_user_exponent", "blend.topics_window",
                               "blend.topics_unit_weights"});
    }
  }
  std::vector<std::string> changes;
  for (const ConfigKey& registered : ConfigKeys()) {
    const absl::string_view key = registered.name;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) continue;
    absl::StatusOr<std::string> was = GetValue(before, key);
    absl::StatusOr<std::string> is = GetValue(now, key);
    if (was.ok() && is.ok() && *was != *is) {
      changes.push_back(absl::StrCat(key, " ", *was, " -> ", *is));
    }
  }
  // Every model weighs an event by its type: the state's counts and steps were taken with the
  // earlier weights.
  if (before.default_weight != now.default_weight) {
    changes.push_back(absl::StrCat("events.default_weight ", FormatFloat(before.default_weight),
                                   " -> ", FormatFloat(now.default_weight)));
  }
  std::set<std::string> types;  // both sides' types, by name
  for (const auto& [type, weight] : before.type_weights) types.insert(type);
  for (const auto& [type, weight] : now.type_weights) types.insert(type);
  const auto weight_text = [](const Config& config, const std::string& type) {
    const auto it = config.type_weights.find(type);
    return it == config.type_weights.end() ? std::string("(unset)") : FormatFloat(it->second);
  };
  for (const std::string& type : types) {
    const std::string was = weight_text(before, type);
    const std::string is = weight_text(now, type);
    if (was != is) changes.push_back(absl::StrCat(kTypesPrefix, type, " ", was, " -> ", is));
  }
  return changes;
}

}  // namespace freshet::config
