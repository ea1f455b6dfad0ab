// freshet's configuration: every tunable in one struct, loaded from one TOML file
// (config/freshet.toml documents every key and its default) and overridable by `--set key=value`.
//
// Keys are "section.name" (e.g. "bpr.lr"). Every key has exactly one entry in the registry
// (ConfigKeys()), which is what the TOML loader, the overrides, `freshet config` and the tests use,
// so a key cannot exist in one place and not another.
#ifndef FRESHET_CONFIG_CONFIG_H_
#define FRESHET_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::config {

// Plain values; copyable. Not synchronised: build it at start-up, then share it read-only.
struct Config {
  // [model] shared by every embedding algorithm
  int dim = 64;           // embedding dimension d
  uint64_t seed = 42;     // seed of every random choice (initialisation, negatives)
  float init_std = 0.1f;  // standard deviation of initial vectors

  // [history] per-user memory
  int history_max_items = 1000;  // distinct items kept per user for exclude-seen (oldest dropped)
  int history_recent = 128;      // latest interactions kept in order for short-term modelling

  // [memory] bounds on what is kept per id
  double user_ttl_s = 0;     // forget users without an event for this long (event time); 0 = never
  int admit_min_events = 1;  // ids join the model on their n-th occurrence (approximate count)
  // A stored or followed state whose row counts would take more memory than this (MiB; 0: the
  // machine's) is refused as corrupt rather than allocated.
  int max_state_mb = 0;

  // [popularity] baseline and cold-start fallback
  double popularity_half_life_s = 0;  // 0 = all-time counts; else exponential decay
  // What users never seen get: "first" (what other users took at their first event) or "all"
  // (all-time popularity; the popularity model always ranks by it).
  std::string popularity_new_users = "first";

  // [bpr] sampled-softmax / pairwise SGD with short-term context
  std::string bpr_loss = "softmax";  // "softmax" (sampled, logQ-corrected) or "bpr" (pairwise)
  int bpr_negatives = 4;
  float bpr_negative_alpha = 0.75f;  // negatives drawn by popularity^alpha (0 = uniform)
  float bpr_lr = 0.1f;               // row-wise Adagrad base learning rate
  float bpr_l2 = 0.01f;
  int bpr_window = 5;                  // latest items forming the short-term user vector
  float bpr_window_decay = 0.6f;       // weight of the item k steps back = decay^k
  float bpr_short_term_weight = 1.0f;  // weight of the short-term vector beside the long-term one
  float bpr_long_term_weight = 0.3f;
  bool bpr_tied_context = true;  // short-term vector from the item embeddings, not its own
  int bpr_replay = 3;            // steps on earlier events after each event (item side)

  // [ials] implicit ALS with closed-form user fold-in
  float ials_reg = 0.05f;         // L2 on user and item vectors
  float ials_unobserved = 2.0f;   // weight alpha0 of every unobserved pair (Gramian term)
  float ials_confidence = 20.0f;  // confidence of an observed pair = 1 + confidence * recency
  int ials_window = 64;           // latest items the fold-in uses
  float ials_window_decay = 0.85f;
  float ials_long_term = 16.0f;          // pull of the previous vector (the long-term part)
  int ials_cg_steps = 3;                 // conjugate-gradient steps per solve; 0 = exact Cholesky
  float ials_popularity_weight = 0.05f;  // weight of the popularity prior log(1 + count_i)

  // [cooc] item-to-item co-occurrence over each user's latest items
  int cooc_window = 16;     // how many of the user's latest items are neighbours of a new one
  float cooc_decay = 0.8f;  // weight of the neighbour k steps back = decay^k (learn and score)
  float cooc_popularity_weight = 0.05f;  // weight of log(1 + popularity) in the score
  float cooc_norm_exponent = 0.5f;       // divide by (count_i * count_j)^exponent
  int64_t cooc_max_pairs = 20000000;     // pruned by weight beyond this many stored pairs
  double cooc_session_gap_s = 3600;      // a user's events further apart start a new session
  float cooc_user_exponent = 0.0f;       // a new item's n pairs each weigh its weight / n^exponent

  // [hybrid] weighted blend of bpr and cooc scores
  float hybrid_cooc_weight = 1.0f;

  // [blend] component models combined by a ranker learnt online (learner/blend_model.h)
  std::string blend_features =
      "bpr,cooc,history,transitions,popularity,trending,ials,profile,ease,topics";
  float blend_history_decay = 0.95f;       // weight of the history item k steps back = decay^k
  int blend_transition_window = 2;         // latest items whose successors are scored
  float blend_transition_decay = 0.5f;     // weight of the item k steps back = decay^k
  double blend_trending_half_life = 2000;  // events over which the trending count halves
  float blend_lr = 0.2f;                   // Adagrad learning rate of the ranker's weights
  int blend_warmup_events = 2000;          // the ranker learns from every one of the first events
  int blend_train_cost = 32;               // then item scorings per event spent on ranker steps
  int blend_sample = 128;      // uniform draws per ranker step; 0: a step scores the whole catalog
  int blend_sample_top = 32;   // best items of each sparse component certain in a sampled step
  int blend_cold_events = 20;  // users with fewer earlier events get weights of their own; 0: none
  bool blend_session_start = true;   // users starting a session get weights of their own
  bool blend_context_steps = true;   // the ranker steps on every event of those two contexts
  bool blend_learn_repeats = false;  // ... also on events of items among the user's recent ones
  std::string blend_sparse_transform = "log";  // "linear" or "log" (log1p(x / mean of x > 0))
  std::string blend_sparse_scale = "none";     // "none" or "sd": those scores over their s.d.
  int blend_ease_items = 2000;                 // the ease component's fit: items counted most
  double blend_ease_lambda = 200;              // its ridge term
  int blend_ease_refit = 5000;                 // events between fits
  bool blend_ease_for_cold_users = false;      // ease also scores users with a cold set
  int blend_topics = 48;                       // the topics component's groups
  int blend_topics_items = 2000;               // items grouped by spectral clustering
  double blend_topics_prior = 2;               // pseudo-items of popularity in a user's mixture
  float blend_profile_user_exponent = 0.0f;    // cooc.user_exponent of the profile table
  float blend_topics_user_exponent = 1.0f;     // ... of the table topics is fitted to
  int blend_topics_window = 32;                // that table's window (at most history.recent)
  bool blend_topics_unit_weights = true;       // its pairs weigh 1 per event, not the event's

  // [events] weight of each event type (unknown types weigh events.default_weight)
  absl::flat_hash_map<std::string, float> type_weights = {
      {"view", 1.0f}, {"click", 2.0f}, {"cart", 4.0f}, {"purchase", 8.0f}, {"rating", 1.0f}};
  float default_weight = 1.0f;
  // Heaviest event accepted (its explicit weight or its type's); heavier events are rejected.
  float max_event_weight = 100.0f;
  // Longest user, item, type or event id accepted, in bytes.
  int max_id_bytes = 256;
  // Event ids (idempotency keys) the engine remembers; 0: ids are not checked.
  int64_t idempotency_keys = 1'000'000;

  // [replay]
  int replay_k = 10;
  int replay_windows = 20;      // slices of the stream reported in "windows"
  std::string backend = "cpu";  // kernels backend: cpu | cuda | auto
  // bpr events per micro-batch: 0 = automatic (256 on a GPU, one event at a time on the CPU);
  // N > 0 on the CPU runs the GPU's micro-batch semantics on the host (slow; for comparisons).
  int micro_batch = 0;
  // GPUs in this process learning bpr together (devices 0 .. gpus - 1, item deltas summed over
  // NCCL every gpu_sync_every_batches micro-batches or gpu_sync_ms milliseconds).
  int gpus = 1;
  int gpu_sync_every_batches = 1;
  int gpu_sync_ms = 0;

  // [replicas] engine processes learning one item model together (learner.h, "Replicas"): each
  // learns its own share of the Kafka partitions; every sync_ms they exchange their item-model
  // changes over NCCL (one GPU each; rank 0 hands the NCCL id to the others through the
  // rendezvous, a file path or redis://HOST:PORT/KEY, engine/replicas/rendezvous.h) or over a
  // Kafka topic (the rendezvous names it; engine/replicas/kafka_collective.h).
  int replica_world_size = 1;              // 1: alone
  std::string replica_transport = "auto";  // nccl | kafka | auto (nccl on the cuda backend)
  int replica_rank = 0;
  std::string replica_rendezvous;
  int replica_sync_ms = 100;
  int replica_timeout_ms = 60000;  // longest wait for the other ranks (rendezvous, each exchange)

  // Serving replicas (engine/follower/): stateless `serve --follow` processes.
  std::string tier_model_topic;  // empty: the learner publishes nothing
  std::string tier_redis;        // redis://HOST:PORT of the users' states
  std::string tier_key_prefix = "freshet:user:";
  int tier_publish_ms = 2;
  int tier_max_users = 100000;  // users a replica keeps between requests
  int tier_redis_timeout_ms = 50;
  bool tier_client_cache = true;  // replicas keep users until Redis invalidates them
  // [store] RocksDB persistence
  // Dirty rows and source positions are written this often. Each flush rewrites every row changed
  // since the last (with sampled negatives, nearly every item of a small catalog), so the cost is
  // per flush more than per event; a crash loses nothing either way (the sources replay what the
  // last flush did not include), so the interval trades restart replay against that cost.
  int flush_interval_ms = 4000;
  // Events POSTed without a broker have no source to replay them: once any are learnt, the next
  // flush comes this long after the latest one.
  int direct_flush_interval_ms = 1000;
  bool store_sync = false;  // fsync every write (survives power loss, not only crashes)
  // Start from the state before the first corrupt write-ahead-log record (dropping what follows,
  // with a warning that counts it) instead of refusing to start. For one start, with --set.
  bool store_accept_wal_loss = false;

  // [serve] ingestion loop and HTTP server
  int serve_batch_events = 4096;  // most events learnt per micro-batch
  std::string serve_bind = "127.0.0.1";
  int serve_port = 8080;
  // HTTP I/O threads; 0: half the cores, 1 to 8 (ServeIoThreads()).
  int serve_io_threads = 0;
  int serve_max_in_flight = 256;  // requests in progress beyond which the server answers 503
  // Bearer token of /admin; empty disables /admin. A secret: ToToml() never writes it, so it is
  // not stored with the state or in snapshots, nor shown by /admin/config or `freshet config`.
  // `freshet serve` also reads it from FRESHET_ADMIN_TOKEN or serve.admin_token_file.
  std::string serve_admin_token;
  std::string serve_admin_token_file;  // a file holding the token (first line)
  int serve_max_connections = 0;       // open HTTP connections; 0: from the fd limit
  int serve_idle_timeout_ms = 15000;   // keep-alive connections idle this long are closed
  // /readyz answers 503 once the learning loop stalls, or no broker is reachable, this long.
  int serve_unready_after_ms = 30000;
  bool serve_batch_scoring = true;  // score concurrent recommendation requests in one pass
  // Batched scoring reads a copy of the item vectors kept current as rows change (CPU backend,
  // models that learn on the host): int8 for the exact two-stage scan where the processor has
  // AVX-512 VNNI, else the float layout of the exact kernels (kernels/packed_items.h).
  bool serve_packed_items = true;
  // "advised": `serve` limits transparent huge pages to the tables that ask for them
  // (common/transparent_huge_pages.h); "system": the kernel's setting decides.
  std::string serve_transparent_huge_pages = "advised";
};

// One registered key.
struct ConfigKey {
  std::string name;     // "bpr.lr"
  std::string type;     // "int", "float", "string", "bool"
  std::string help;     // one line
  bool secret = false;  // never written out by ToToml()
};

// Every key, in documentation order (type_weights is the table [events.types]).
const std::vector<ConfigKey>& ConfigKeys();

// Reads `key` (e.g. "bpr.lr") as text in TOML value syntax (strings unquoted).
absl::StatusOr<std::string> GetValue(const Config& config, absl::string_view key);

// Sets one key from text: "bpr.lr", "0.05". Also "events.types.<type>" = weight.
// InvalidArgument for an unknown key (with the closest valid key), a value of the wrong type, or
// a value outside the key's range.
absl::Status SetValue(Config* config, absl::string_view key, absl::string_view value);

// Applies "key=value" strings in order (the --set flag), then the checks across keys; on any error
// *config is left as it was.
absl::Status ApplyOverrides(Config* config, const std::vector<std::string>& assignments);

// Loads a TOML file over the defaults. NotFound if it does not exist; InvalidArgument (with file,
// line and key) for a syntax error, an unknown key or a bad value.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Parses TOML text (for tests and for embedded defaults); `origin` names it in errors.
absl::StatusOr<Config> ParseConfig(absl::string_view toml_text, absl::string_view origin);

// Checks cross-key constraints (e.g. dim in [1, 1024]). Called by the loaders and SetValue.
absl::Status Validate(const Config& config);

// The whole configuration as TOML (every key, current values), e.g. for `freshet config`.
std::string ToToml(const Config& config);

// The HTTP I/O threads to run: serve.io_threads, or for 0 half the processor's cores, 1 to 8 (each
// epoll thread answers tens of thousands of requests a second; the scoring, learning and
// persisting threads need cores of their own).
int ServeIoThreads(const Config& config);

// Whether blend.features names `feature` (a name among its comma-separated ones).
bool BlendNamesFeature(const Config& config, absl::string_view feature);

// Whether blend's topics component is fitted to a pair table of its own: blend.features names
// topics and its table's settings (blend.topics_user_exponent, blend.topics_window,
// blend.topics_unit_weights) are not the profile table's. Its item rows then carry that table's
// part.
bool BlendTopicsOwnTable(const Config& config);

// The settings that decide how `algorithm` counts an event, where `before` and `now` differ: one
// "key before -> now" each. First the settings of the pair and transition tables it keeps (cooc's
// and hybrid's co-occurrence table; blend's, for the components blend.features names), in
// documentation order; then the event weights every model takes (events.default_weight, and each
// events.types.<type> by type name, "(unset)" where a side has no entry). They leave a state's
// row layout as it is, so a state counted under `before` opens under `now` and goes on counting
// the new way over the old counts.
std::vector<std::string> CountingChanges(absl::string_view algorithm, const Config& before,
                                         const Config& now);

}  // namespace freshet::config

#endif  // FRESHET_CONFIG_CONFIG_H_
