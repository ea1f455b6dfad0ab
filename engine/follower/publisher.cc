#include "engine/follower/publisher.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "engine/follower/model_topic.h"

namespace freshet::engine {

PublisherOptions PublisherOptionsFor(const config::Config& config, std::string brokers,
                                     std::map<std::string, std::string> kafka_properties) {
  PublisherOptions o;
  o.brokers = std::move(brokers);
  o.kafka_properties = std::move(kafka_properties);
  o.model_topic = config.tier_model_topic;
  o.redis_url = config.tier_redis;
  o.key_prefix = config.tier_key_prefix;
  o.interval = absl::Milliseconds(config.tier_publish_ms);
  o.user_ttl_s = config.user_ttl_s;
  return o;
}

absl::StatusOr<std::unique_ptr<ModelPublisher>> ModelPublisher::Create(PublisherOptions options,
                                                                       LiveModel* model) {
  if (options.model_topic.empty()) {
    return absl::InvalidArgumentError("publishing to replicas needs a model topic");
  }
  FRESHET_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.redis_url));
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<RedisClient> redis,
                           RedisClient::Create(std::move(address), options.redis_timeout));
  stream::KafkaProducerOptions producer_options;
  producer_options.brokers = options.brokers;
  producer_options.properties = {{"linger.ms", "1"}};
  for (const auto& [key, value] : options.kafka_properties) {
    producer_options.properties[key] = value;
  }
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::KafkaProducer> producer,
                           stream::KafkaProducer::Create(std::move(producer_options)));
  model->WithLearnerExclusive([](learner::Learner& learner) { learner.EnablePublishing(); });
  return std::unique_ptr<ModelPublisher>(
      new ModelPublisher(std::move(options), model, std::move(producer), std::move(redis)));
}

ModelPublisher::ModelPublisher(PublisherOptions options, LiveModel* model,
                               std::unique_ptr<stream::KafkaProducer> producer,
                               std::unique_ptr<RedisClient> redis)
    : options_(std::move(options)),
      model_(model),
      producer_(std::move(producer)),
      redis_(std::move(redis)) {}

ModelPublisher::~ModelPublisher() { Stop(); }

void ModelPublisher::Start() {
  MutexLock lock(&start_stop_mu_);
  if (thread_.joinable()) return;
  {
    MutexLock stop(&stop_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void ModelPublisher::Stop() {
  MutexLock lock(&start_stop_mu_);
  if (!thread_.joinable()) return;
  {
    MutexLock stop(&stop_mu_);
    stopping_ = true;
  }
  stop_cv_.SignalAll();
  thread_.join();
  if (absl::Status s = Round(); !s.ok())
    LogWarning(absl::StrCat("publisher: last round: ", s.ToString()));
  if (absl::Status s = FlushKafka(absl::Seconds(5)); !s.ok()) {
    LogWarning(absl::StrCat("publisher: model topic: ", s.ToString()));
  }
}

absl::Status ModelPublisher::PublishOnce() { return Round(); }

absl::Status ModelPublisher::FlushKafka(absl::Duration timeout) {
  return producer_->Flush(timeout);
}

void ModelPublisher::Loop() {
  absl::Time last_warning = absl::InfinitePast();
  while (true) {
    {
      MutexLock lock(&stop_mu_);
      if (stopping_ || stop_cv_.WaitFor(&stop_mu_, options_.interval) || stopping_) {
        if (stopping_) return;
      }
    }
    const absl::Status status = Round();
    if (!status.ok() && absl::Now() - last_warning > absl::Seconds(10)) {
      last_warning = absl::Now();
      LogWarning(absl::StrCat("publisher: ", status.ToString()));
    }
  }
}

absl::Status ModelPublisher::Round() {
  MutexLock round(&round_mu_);
  const absl::Time start = absl::Now();
  producer_->Poll();
  // Messages the broker did not acknowledge: the item table goes out whole again.
  const int64_t failed = producer_->failed();
  const bool resend_items = first_round_ || failed != kafka_failed_seen_;
  const bool resend_users = first_round_;
  first_round_ = false;
  kafka_failed_seen_ = failed;

  learner::Learner::PublishedChanges changes =
      model_->WithLearnerExclusive([resend_items, resend_users](learner::Learner& learner) {
        if (resend_items) learner.MarkAllPublished(resend_users);
        return learner.TakePublishedChanges();
      });
  std::vector<int32_t> items = std::move(pending_items_);
  pending_items_.clear();
  items.insert(items.end(), changes.items.begin(), changes.items.end());
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());

  const bool redis_due = absl::Now() >= redis_retry_at_;
  const bool heartbeat = absl::Now() - last_globals_ >= options_.heartbeat;
  const bool any = !items.empty() || !changes.users.empty() || heartbeat;
  if (!any && (!redis_due || pending_users_.empty())) return absl::OkStatus();

  // Encode under the shared lock; write outside it.
  std::vector<std::pair<std::string, std::string>> users;
  absl::Status kafka_status;
  int64_t items_sent = 0;
  bool globals_sent = false;
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  // The lambda below runs under the learner's lock, not visibly under round_mu_: it works on
  // locals, merged back after it.
  std::vector<int32_t> unsent_items;
  absl::flat_hash_set<std::string> retry;
  if (redis_due) retry.swap(pending_users_);
  std::vector<std::string> waiting;  // users to remember while Redis is not due
  // The messages are encoded under the shared lock and produced after it: handing hundreds of
  // rows to the Kafka client per round must not hold off the learning that waits for the lock
  // (and, behind it, the requests).
  const bool send_globals = !items.empty() || heartbeat || !changes.users.empty();
  std::string globals;
  std::vector<std::pair<std::string, std::string>> rows;  // key, value of each item row
  model_->WithLearner([&](const learner::Learner& learner) {
    // The globals first: they size the replica's tables for the rows that follow.
    if (send_globals) {
      model_topic::PutHeader({model_topic::kGlobals, now_ns, -1}, &globals);
      learner.EncodeGlobals(&globals);
    }
    rows.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const int32_t row = items[i];
      rows[i].first = absl::StrCat("i", learner.items().ExternalId(row));
      model_topic::PutHeader({model_topic::kItem, now_ns, row}, &rows[i].second);
      learner.EncodeItem(row, &rows[i].second);
    }
    // Users: this round's, and (when Redis is due) those that could not be written before.
    const auto encode = [&](int32_t row) {
      const std::string& id = learner.users().ExternalId(row);
      std::string state;
      learner.EncodePublishedUser(row, &state);
      users.emplace_back(UserStateKey(options_.key_prefix, id), std::move(state));
    };
    if (redis_due) {
      for (const std::string& id : retry) {
        const int32_t row = learner.users().Find(id);
        if (row >= 0 && learner.users().IsLive(row)) encode(row);
      }
      for (int32_t row : changes.users) encode(row);
    } else {
      for (int32_t row : changes.users) waiting.push_back(learner.users().ExternalId(row));
    }
  });
  if (send_globals) {
    kafka_status = producer_->ProduceTo(options_.model_topic, model_topic::kPartition, "g", globals,
                                        absl::ZeroDuration());
    if (kafka_status.ok()) {
      globals_sent = true;
    } else {
      unsent_items = items;
    }
  }
  for (size_t i = 0; kafka_status.ok() && i < rows.size(); ++i) {
    const absl::Status s =
        producer_->ProduceTo(options_.model_topic, model_topic::kPartition, rows[i].first,
                             rows[i].second, absl::ZeroDuration());
    if (!s.ok()) {  // the local queue is full: the rest go next round
      kafka_status = s;
      unsent_items.assign(items.begin() + static_cast<ptrdiff_t>(i), items.end());
      break;
    }
    ++items_sent;
  }
  producer_->Poll();
  if (globals_sent) last_globals_ = absl::Now();
  pending_items_ = std::move(unsent_items);
  int64_t overflow = 0;
  for (std::string& id : waiting) {
    if (static_cast<int64_t>(pending_users_.size()) >= options_.max_pending_users) {
      ++overflow;
    } else {
      pending_users_.insert(std::move(id));
    }
  }

  absl::Status redis_status;
  int64_t users_written = 0;
  double redis_s = 0;
  if (!users.empty()) {
    const absl::Time t = absl::Now();
    redis_status = redis_->SetMany(users, options_.user_ttl_s);
    redis_s = absl::ToDoubleSeconds(absl::Now() - t);
    if (redis_status.ok()) {
      users_written = static_cast<int64_t>(users.size());
    } else {
      // Remember who: written again, with their state as it is then, once Redis answers.
      redis_retry_at_ = absl::Now() + absl::Milliseconds(500);
      const size_t prefix = options_.key_prefix.size() + 1;
      for (const auto& [key, value] : users) {
        if (static_cast<int64_t>(pending_users_.size()) >= options_.max_pending_users) {
          ++overflow;
          continue;
        }
        pending_users_.insert(key.substr(prefix, key.size() - prefix - 1));
      }
    }
  }
  {
    MutexLock s(&stats_mu_);
    ++stats_.rounds;
    stats_.users_overflow += overflow;
    stats_.items_published += items_sent;
    stats_.globals_published += globals_sent ? 1 : 0;
    stats_.users_published += users_written;
    stats_.redis_commands += static_cast<int64_t>(users.size());
    stats_.redis_errors += redis_status.ok() ? 0 : 1;
    stats_.users_pending = static_cast<int64_t>(pending_users_.size());
    stats_.kafka_failures = failed;
    stats_.redis_seconds += redis_s;
    stats_.last_round_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  }
  FRESHET_RETURN_IF_ERROR(kafka_status);
  return redis_status;
}

std::string ExportItemState(const learner::Learner& learner, int64_t version_ns) {
  std::string out, message;
  const auto put = [&out, &message] {
    ByteWriter(&out).PutString(message);
    message.clear();
  };
  model_topic::PutHeader({model_topic::kGlobals, version_ns, -1}, &message);
  learner.EncodeGlobals(&message);
  put();
  for (int32_t row = 0; row < learner.items().size(); ++row) {
    if (!learner.items().IsLive(row)) continue;
    model_topic::PutHeader({model_topic::kItem, version_ns, row}, &message);
    learner.EncodeItem(row, &message);
    put();
  }
  return out;
}

PublisherStats ModelPublisher::stats() const {
  MutexLock s(&stats_mu_);
  return stats_;
}

}  // namespace freshet::engine
