// ModelPublisher: the learning side of serving replicas (engine/follower/README.md). Every
// publish interval it takes what the learner changed (Learner::TakePublishedChanges) and writes
//   - each changed item row to the model topic (model_topic.h), and the globals, and
//   - each changed user's state (Learner::EncodePublishedUser) to Redis, pipelined, under
//     UserStateKey(prefix, user), expiring with memory.user_ttl_s when that is set,
// so replicas answer from state milliseconds old, not from the store's flush interval.
//
// Nothing learnt is lost when Redis or the broker fails: the store keeps everything as before;
// users that could not be written are remembered by id (up to max_pending_users; beyond that
// they are counted as overflow and reach Redis with their next event) and written again, with
// their state as it is then, once Redis answers; items whose messages were not acknowledged make
// the next round publish the whole item table again.
//
// Thread safety: Start() and Stop() from the owner; stats() from any thread. The rounds run on
// the publisher's own thread and take the learner's lock briefly (exclusively to take the
// changes, shared to encode them); Redis and Kafka are written outside it.
#ifndef FRESHET_ENGINE_FOLLOWER_PUBLISHER_H_
#define FRESHET_ENGINE_FOLLOWER_PUBLISHER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "config/config.h"
#include "engine/follower/redis_client.h"
#include "engine/live_model.h"
#include "stream/kafka/kafka_producer.h"

namespace freshet::engine {

struct PublisherOptions {
  std::string brokers;  // bootstrap.servers of the model topic
  std::map<std::string, std::string> kafka_properties;
  std::string model_topic;
  std::string redis_url;  // redis://HOST:PORT
  std::string key_prefix = "freshet:user:";
  absl::Duration interval = absl::Milliseconds(2);
  // With nothing changed, the globals are published this often, so replicas can tell an idle
  // learner from a lost one.
  absl::Duration heartbeat = absl::Seconds(1);
  absl::Duration redis_timeout = absl::Milliseconds(500);
  int64_t user_ttl_s = 0;  // EX of each user key; 0: none
  int64_t max_pending_users = 1'000'000;
};

// The options the configuration gives (serving_replicas.*, memory.user_ttl_s, the brokers'
// librdkafka properties), for the brokers at `brokers`.
PublisherOptions PublisherOptionsFor(const config::Config& config, std::string brokers,
                                     std::map<std::string, std::string> kafka_properties);

struct PublisherStats {
  int64_t rounds = 0;
  int64_t items_published = 0;
  int64_t globals_published = 0;
  int64_t users_published = 0;  // acknowledged by Redis
  int64_t redis_errors = 0;     // rounds whose Redis write failed
  int64_t users_pending = 0;    // users waiting for Redis to answer again
  int64_t users_overflow = 0;   // users not remembered (more than max_pending_users waiting)
  int64_t kafka_failures = 0;   // item messages the broker did not acknowledge
  int64_t redis_commands = 0;   // SETs sent
  double last_round_ms = 0;     // wall time of the latest round that published something
  double redis_seconds = 0;     // total time in Redis writes
};

class ModelPublisher {
 public:
  // `model` must outlive the publisher. InvalidArgument for a bad address or missing topic;
  // Unimplemented without hiredis. Enables publishing on the learner.
  static absl::StatusOr<std::unique_ptr<ModelPublisher>> Create(PublisherOptions options,
                                                                LiveModel* model);
  ~ModelPublisher();  // Stop()
  ModelPublisher(const ModelPublisher&) = delete;
  ModelPublisher& operator=(const ModelPublisher&) = delete;

  // The first round publishes every item row and every live user.
  void Start();
  // A last round, then waits up to 5 s for the broker's acknowledgements. Idempotent.
  void Stop();
  // One round now, on the caller's thread (tests; not while Start()ed).
  absl::Status PublishOnce();
  // Waits for the broker to acknowledge what is queued (tests, Stop()).
  absl::Status FlushKafka(absl::Duration timeout);
  PublisherStats stats() const;

 private:
  ModelPublisher(PublisherOptions options, LiveModel* model,
                 std::unique_ptr<stream::KafkaProducer> producer,
                 std::unique_ptr<RedisClient> redis);
  void Loop();
  absl::Status Round();

  const PublisherOptions options_;
  LiveModel* const model_;
  const std::unique_ptr<stream::KafkaProducer> producer_;
  const std::unique_ptr<RedisClient> redis_;

  // The round's state: one round at a time (the loop thread, or PublishOnce before Start).
  Mutex round_mu_;
  bool first_round_ ABSL_GUARDED_BY(round_mu_) = true;
  absl::Time last_globals_ ABSL_GUARDED_BY(round_mu_) = absl::InfinitePast();
  absl::Time redis_retry_at_ ABSL_GUARDED_BY(round_mu_) = absl::InfinitePast();
  int64_t kafka_failed_seen_ ABSL_GUARDED_BY(round_mu_) = 0;
  absl::flat_hash_set<std::string> pending_users_ ABSL_GUARDED_BY(round_mu_);
  std::vector<int32_t> pending_items_ ABSL_GUARDED_BY(round_mu_);  // not produced yet

  mutable Mutex stats_mu_ ABSL_ACQUIRED_AFTER(round_mu_);
  PublisherStats stats_ ABSL_GUARDED_BY(stats_mu_);

  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
  Mutex start_stop_mu_;
};

// The learner's whole item state as model topic messages (model_topic.h) — the globals, then
// every item row — each stamped with `version_ns`, each preceded by its length (a varint), what
// GET /admin/model/items answers, and what a replica starting with --bootstrap applies before it
// follows the topic (ModelFollower::Bootstrap), so it needs no topic that holds every row.
// The caller holds the learner still (shared).
std::string ExportItemState(const learner::Learner& learner, int64_t version_ns);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_FOLLOWER_PUBLISHER_H_
