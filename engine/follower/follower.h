// The serving side of serving replicas (engine/follower/README.md): a process with no event
// source and no data directory that answers any user from the freshest parameters.
//   ModelFollower keeps the replica's learner equal to the learning one's item side: it reads the
//     model topic (model_topic.h) from its beginning, then follows it, and fetches a user's
//     state from Redis when a request asks for that user.
//   FollowerReader is the ModelReader the API serves through: each recommendation first brings
//     the user's state from Redis into the replica's learner (a bounded cache of users), then
//     scores like the learner itself would.
#ifndef FRESHET_ENGINE_FOLLOWER_FOLLOWER_H_
#define FRESHET_ENGINE_FOLLOWER_FOLLOWER_H_

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "config/config.h"
#include "engine/follower/redis_client.h"
#include "engine/live_model.h"
#include "engine/model_reader.h"

namespace freshet::engine {

struct FollowerOptions {
  std::string brokers;  // bootstrap.servers of the model topic
  std::map<std::string, std::string> kafka_properties;
  std::string model_topic;
  std::string redis_url;  // redis://HOST:PORT
  std::string key_prefix = "freshet:user:";
  // How long a request waits for Redis before answering from the replica's last copy.
  absl::Duration redis_timeout = absl::Milliseconds(50);
  // After a Redis error, requests answer from the replica's copies without asking Redis for
  // this long (so an outage costs no timeout per request).
  absl::Duration redis_retry = absl::Milliseconds(500);
  int64_t max_users = 100'000;  // users whose state the replica keeps between requests
  // Server-assisted client-side caching (Redis >= 6): a user read once is answered from the
  // replica's copy, without a read, until Redis says the user's state changed (its invalidation
  // reaches the replica within a millisecond or so of the learner's write). Off: every request
  // reads its user from Redis.
  bool client_cache = true;
};

// The options the configuration gives (serving_replicas.*), for the model topic's brokers at
// `brokers`.
FollowerOptions FollowerOptionsFor(const config::Config& config, std::string brokers,
                                   std::map<std::string, std::string> kafka_properties);

struct FollowerStats {
  // The model topic.
  int64_t messages = 0;
  int64_t items_applied = 0;
  int64_t globals_applied = 0;
  int64_t malformed = 0;    // messages that could not be applied (skipped, logged)
  int64_t next_offset = 0;  // of partition 0
  int64_t end_offset = -1;  // the broker's high watermark as last seen; -1 unknown
  bool caught_up = false;   // has reached the end of the topic once (and has the globals)
  double item_lag_ms = -1;  // publishing to applying, of the latest message; -1 none yet
  double state_age_s = -1;  // since the latest message was published; -1 none yet
  int64_t topic_errors = 0;
  std::string last_error;
  // Deferred work (blend's ease fit) that a batch of messages made due; it runs after the batch,
  // while reads go on.
  bool work_pending = false;
  int64_t work_runs = 0;
  // Users.
  int64_t user_fetches = 0;  // Redis GETs
  int64_t user_fetch_errors = 0;
  int64_t users_from_cache = 0;  // answered from the replica's copy (Redis unreachable)
  int64_t users_not_found = 0;   // no state in Redis (popularity)
  int64_t users_cached = 0;
  double redis_seconds = 0;  // total time in Redis reads
  // Client-side caching.
  bool client_cache = false;     // Redis is tracking the replica's reads now
  int64_t user_reads_saved = 0;  // answers from a copy Redis has not invalidated (no read)
  int64_t invalidations = 0;     // keys Redis said changed (a flush of all counts one)
  int64_t tracking_refused = 0;  // reads Redis would not track (they were read, not kept)
};

class ModelFollower {
 public:
  // `model` (a new learner of the learning side's algorithm and dimension) must outlive the
  // follower. InvalidArgument for a bad address or missing topic; Unimplemented without hiredis.
  static absl::StatusOr<std::unique_ptr<ModelFollower>> Create(FollowerOptions options,
                                                               LiveModel* model);
  ~ModelFollower();  // Stop()
  ModelFollower(const ModelFollower&) = delete;
  ModelFollower& operator=(const ModelFollower&) = delete;

  // Applies a learner's ExportItemState() (publisher.h) before Start(): the replica then follows
  // the topic from its beginning, skipping states older than the export's. DataLoss for a
  // truncated export (nothing of it is applied) or records that cannot be applied.
  absl::Status Bootstrap(absl::string_view exported);
  // Starts reading the model topic from its beginning.
  absl::Status Start();
  void Stop();  // idempotent

  // Ready to answer: the topic has been read to its end once and the globals received.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // OK when ready; Unavailable saying what is awaited (or the topic's error) otherwise.
  absl::Status Readiness() const;
  FollowerStats stats() const;

  // Where a user's state came from for one request (RecommendResult::user_state).
  enum class UserState { kRedis, kCache, kNone };
  // Brings `user`'s latest state from Redis into the replica's learner. On a Redis error, the
  // replica's last copy (kCache) or none (kNone: popularity).
  UserState LoadUser(absl::string_view user) const;
  // The same for several users at once: one pipelined round trip to Redis, and the learner's
  // lock taken once, only when a state differs from the copy the replica has.
  std::vector<UserState> LoadUsers(const std::vector<std::string>& users) const;

  // Returns once every invalidation Redis sent before the call has been applied (a user changed
  // in Redis before it is then read again, not answered from the replica's copy); OK at once when
  // client-side caching is off. DeadlineExceeded after `timeout`.
  absl::Status SyncInvalidations(absl::Duration timeout) const;

  // Observers for /metrics, set before Start(): the publishing-to-applied lag of every model
  // topic message (seconds), and the age of every user state read from Redis (seconds since the
  // learner learnt its latest event).
  void SetObservers(std::function<void(double)> item_lag, std::function<void(double)> user_age);

 private:
  ModelFollower(FollowerOptions options, LiveModel* model, RedisAddress redis);
  void Loop();
  // Client-side caching: keeps a connection subscribed to Redis's invalidations, and forgets the
  // users they name.
  void InvalidationLoop();
  // Every user is read from Redis again (the invalidations of the tracked ones may be lost).
  void ForgetTracked() const;
  // The read `token` of `user` is over: the replica's copy of the user is current when `current`
  // and neither an invalidation nor a later read took the read's mark meanwhile; otherwise the
  // mark goes (unless a later read holds it).
  void SettleRead(const std::string& user, uint64_t token, bool current) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_mu_);
  // Applies one poll's messages under one exclusive hold.
  void Apply(const std::vector<rd_kafka_message_t*>& messages);
  // Applies messages (offset -1: from an export) under one exclusive hold.
  struct Message {
    absl::string_view value;
    int64_t offset = -1;
  };
  void ApplyMessages(const std::vector<Message>& messages);
  // Runs the model's deferred work if the last batch made some due (FollowerStats::work_pending).
  void RunDueWork();
  std::unique_ptr<RedisClient> TakeClient() const;
  void ReturnClient(std::unique_ptr<RedisClient> client) const;

  const FollowerOptions options_;
  LiveModel* const model_;
  const RedisAddress redis_;
  rd_kafka_t* consumer_ = nullptr;  // Start() .. destruction
  std::thread thread_;
  std::thread invalidation_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  bool globals_seen_ = false;  // the loop thread's
  std::function<void(double)> item_lag_observer_;
  std::function<void(double)> user_age_observer_;

  mutable Mutex clients_mu_;
  mutable std::vector<std::unique_ptr<RedisClient>> idle_clients_ ABSL_GUARDED_BY(clients_mu_);
  // The users the replica keeps, oldest fetched first (their learner rows are freed beyond
  // max_users); under the learner's exclusive lock.
  mutable Mutex cache_mu_;
  mutable std::deque<std::string> cached_ ABSL_GUARDED_BY(cache_mu_);
  // The cached users and a fingerprint of the state each was loaded from: a state read again
  // unchanged (most reads: no new event of that user) is not decoded again.
  mutable absl::flat_hash_map<std::string, uint64_t> fingerprints_ ABSL_GUARDED_BY(cache_mu_);
  mutable std::atomic<int64_t> redis_down_until_ns_{0};
  // Client-side caching. The users whose state the replica read while Redis tracked the read: 0
  // once the copy the replica has is that state (answered without a read until an invalidation
  // removes it); else the token of the read in flight that will make it so, unless an
  // invalidation or a later read takes its place first.
  mutable absl::flat_hash_map<std::string, uint64_t> tracked_ ABSL_GUARDED_BY(cache_mu_);
  mutable std::atomic<uint64_t> next_token_{1};
  // The id of the connection receiving the invalidations (0: none, no caching), and a count of
  // its connections and losses: reads tracked under an earlier one are kept only if no loss came
  // between.
  std::atomic<int64_t> tracking_id_{0};
  std::atomic<int64_t> tracking_epoch_{0};
  mutable std::atomic<int64_t> barriers_asked_{0};
  std::atomic<int64_t> barriers_met_{0};
  std::atomic<bool> invalidations_started_{false};
  mutable std::atomic<int64_t> tracking_warned_ns_{0};

  mutable Mutex stats_mu_;
  mutable FollowerStats stats_ ABSL_GUARDED_BY(stats_mu_);
  std::atomic<int64_t> latest_published_ns_{0};
};

// The ModelReader of a serving replica: the live model, with each user's state brought from
// Redis before it is scored. Thread-safe like LiveModel.
//
// Inside a BurstEnd scope (an HTTP I/O thread's round of ready connections) the round's requests
// are queued and, when the round ends, their users are read from Redis in one pipelined round
// trip and applied under one hold of the learner's lock; then they are scored together as one
// batch (LiveModel's batched scoring). Outside a scope each request is served at once.
class FollowerReader final : public ModelReader {
 public:
  // Neither is owned; both must outlive the reader.
  FollowerReader(const LiveModel* model, const ModelFollower* follower)
      : model_(model), follower_(follower) {}
  ~FollowerReader() override;  // answers what is queued

  void RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                      const std::vector<std::string>& exclude_items,
                      RecommendDone done) const override;
  absl::Status SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const override {
    return model_->SimilarTo(item, k, out);
  }
  UserInfo User(absl::string_view user) const override;
  std::vector<std::string> HiddenItems() const override { return model_->HiddenItems(); }
  int64_t model_version() const override { return model_->model_version(); }
  ModelInfo info() const override { return model_->info(); }
  ModelStats stats() const override { return model_->stats(); }

 private:
  struct Request {
    std::string user;
    int k = 0;
    bool exclude_seen = false;
    std::vector<std::string> exclude_items;
    RecommendDone done;
  };
  // Loads the users of everything queued and hands the requests to the live model.
  void Drain() const;
  void Score(Request& request, ModelFollower::UserState state) const;

  const LiveModel* const model_;
  const ModelFollower* const follower_;
  mutable Mutex queue_mu_;
  mutable std::vector<Request> queue_ ABSL_GUARDED_BY(queue_mu_);
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_FOLLOWER_FOLLOWER_H_
