#include "engine/follower/follower.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/burst_end.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "engine/follower/model_topic.h"
#include "stream/kafka/rdkafka_util.h"

namespace freshet::engine {

namespace rdkafka = stream::rdkafka;

FollowerOptions FollowerOptionsFor(const config::Config& config, std::string brokers,
                                   std::map<std::string, std::string> kafka_properties) {
  FollowerOptions o;
  o.brokers = std::move(brokers);
  o.kafka_properties = std::move(kafka_properties);
  o.model_topic = config.tier_model_topic;
  o.redis_url = config.tier_redis;
  o.key_prefix = config.tier_key_prefix;
  o.redis_timeout = absl::Milliseconds(config.tier_redis_timeout_ms);
  o.max_users = config.tier_max_users;
  o.client_cache = config.tier_client_cache;
  return o;
}

absl::StatusOr<std::unique_ptr<ModelFollower>> ModelFollower::Create(FollowerOptions options,
                                                                     LiveModel* model) {
  if (options.model_topic.empty()) {
    return absl::InvalidArgumentError("a serving replica needs a model topic to follow");
  }
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("a serving replica needs the brokers of its model topic");
  }
  FRESHET_ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(options.redis_url));
  // Fails here, not at the first request, when there is no Redis client.
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<RedisClient> probe,
                           RedisClient::Create(address, options.redis_timeout));
  auto follower =
      std::unique_ptr<ModelFollower>(new ModelFollower(std::move(options), model, address));
  follower->ReturnClient(std::move(probe));
  return follower;
}

ModelFollower::ModelFollower(FollowerOptions options, LiveModel* model, RedisAddress redis)
    : options_(std::move(options)), model_(model), redis_(std::move(redis)) {}

ModelFollower::~ModelFollower() {
  Stop();
  if (consumer_ != nullptr) {
    rd_kafka_destroy(consumer_);
    consumer_ = nullptr;
  }
}

void ModelFollower::SetObservers(std::function<void(double)> item_lag,
                                 std::function<void(double)> user_age) {
  item_lag_observer_ = std::move(item_lag);
  user_age_observer_ = std::move(user_age);
}

absl::Status ModelFollower::Start() {
  if (consumer_ != nullptr) return absl::OkStatus();
  rdkafka::ConfPtr conf = rdkafka::NewConf();
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "bootstrap.servers", options_.brokers));
  // Assigned, not subscribed: every replica reads the whole topic; the group id is never used
  // to commit (a replica always starts from the beginning).
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "group.id", "freshet-replica"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.auto.commit", "false"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.partition.eof", "true"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "fetch.wait.max.ms", "5"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), options_.kafka_properties));
  FRESHET_ASSIGN_OR_RETURN(consumer_, rdkafka::NewClient(RD_KAFKA_CONSUMER, std::move(conf)));
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, options_.model_topic.c_str(), model_topic::kPartition)
      ->offset = RD_KAFKA_OFFSET_BEGINNING;
  const rd_kafka_resp_err_t err = rd_kafka_assign(consumer_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return rdkafka::KafkaError(err, absl::StrCat("replica: reading ", options_.model_topic));
  }
  stop_.store(false);
  thread_ = std::thread([this] { Loop(); });
  if (options_.client_cache) {
    invalidations_started_.store(true);
    invalidation_thread_ = std::thread([this] { InvalidationLoop(); });
  }
  return absl::OkStatus();
}

void ModelFollower::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (invalidation_thread_.joinable()) invalidation_thread_.join();
  invalidations_started_.store(false);  // nothing is tracked any more (the loop's end)
}

void ModelFollower::ForgetTracked() const {
  MutexLock c(&cache_mu_);
  tracked_.clear();
}

void ModelFollower::InvalidationLoop() {
  absl::StatusOr<std::unique_ptr<RedisInvalidations>> made =
      RedisInvalidations::Create(redis_, options_.redis_timeout);
  if (!made.ok()) {
    LogWarning(absl::StrCat("replica: no client-side caching: ", made.status().message()));
    return;
  }
  std::unique_ptr<RedisInvalidations> redis = *std::move(made);
  bool connected = false;
  std::deque<int64_t> barriers;  // asked for and sent, not met yet
  int64_t barriers_sent = 0;     // SyncInvalidations() calls answered or sent for
  std::vector<std::string> keys;
  absl::Time last_warning = absl::InfinitePast();
  const auto warn = [&](absl::string_view what) {
    if (absl::Now() - last_warning < absl::Seconds(10)) return;
    last_warning = absl::Now();
    LogWarning(absl::StrCat("replica: ", what, " (every request reads Redis meanwhile)"));
  };
  // Once nothing is tracked, every invalidation asked about has trivially been applied.
  const auto lost = [&] {
    tracking_id_.store(0);
    tracking_epoch_.fetch_add(1);
    ForgetTracked();
    barriers_sent = barriers_asked_.load();
    barriers_met_.store(barriers_sent);
    barriers.clear();
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    if (!connected) {
      absl::StatusOr<int64_t> id = redis->Connect();
      if (!id.ok()) {
        lost();
        warn(absl::StrCat("client-side caching: ", id.status().message()));
        const absl::Time until =
            absl::Now() + std::max(options_.redis_retry, absl::Milliseconds(10));
        while (!stop_.load(std::memory_order_relaxed) && absl::Now() < until) {
          absl::SleepFor(absl::Milliseconds(10));
        }
        continue;
      }
      ForgetTracked();
      tracking_epoch_.fetch_add(1);
      tracking_id_.store(*id);
      connected = true;
    }
    absl::Status status;
    if (const int64_t asked = barriers_asked_.load(); asked > barriers_sent) {
      status = redis->Barrier();
      barriers_sent = asked;
      barriers.push_back(asked);
    }
    keys.clear();
    bool all = false;
    const int64_t met_before = redis->barriers();
    if (status.ok()) status = redis->Poll(absl::Milliseconds(20), &keys, &all);
    if (!keys.empty() || all) {
      MutexLock c(&cache_mu_);
      if (all) {
        tracked_.clear();
      } else {
        for (const std::string& key : keys) {
          if (std::optional<absl::string_view> user = UserOfStateKey(options_.key_prefix, key)) {
            tracked_.erase(*user);
          }
        }
      }
    }
    if (!keys.empty() || all) {
      MutexLock s(&stats_mu_);
      stats_.invalidations += all ? 1 : static_cast<int64_t>(keys.size());
    }
    for (int64_t met = redis->barriers() - met_before; met > 0 && !barriers.empty(); --met) {
      barriers_met_.store(barriers.front());
      barriers.pop_front();
    }
    if (!status.ok()) {
      connected = false;
      lost();
      warn(absl::StrCat("client-side caching: ", status.message()));
    }
  }
  lost();
}

void ModelFollower::SettleRead(const std::string& user, uint64_t token, bool current) const {
  const auto it = tracked_.find(user);
  if (it == tracked_.end() || it->second != token) return;  // invalidated, or read again since
  if (current) {
    it->second = 0;
  } else {
    tracked_.erase(it);
  }
}

absl::Status ModelFollower::SyncInvalidations(absl::Duration timeout) const {
  if (!invalidations_started_.load()) return absl::OkStatus();
  const int64_t asked = barriers_asked_.fetch_add(1) + 1;
  const absl::Time deadline = absl::Now() + timeout;
  while (barriers_met_.load() < asked) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("replica: Redis's invalidations not confirmed in time");
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

void ModelFollower::Loop() {
  std::vector<rd_kafka_message_t*> batch;
  absl::Time last_warning = absl::InfinitePast();
  while (!stop_.load(std::memory_order_relaxed)) {
    batch.clear();
    bool eof = false;
    for (int i = 0; i < 4096; ++i) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, i == 0 ? 100 : 0);
      if (m == nullptr) break;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        eof = true;
        rd_kafka_message_destroy(m);
        break;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const std::string why = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        {
          MutexLock s(&stats_mu_);
          ++stats_.topic_errors;
          stats_.last_error = why;
        }
        if (absl::Now() - last_warning > absl::Seconds(10)) {
          last_warning = absl::Now();
          LogWarning(absl::StrCat("replica: model topic ", options_.model_topic, ": ", why,
                                  " (keeping the item state received so far)"));
        }
        break;
      }
      batch.push_back(m);
    }
    if (!batch.empty()) Apply(batch);
    for (rd_kafka_message_t* m : batch) rd_kafka_message_destroy(m);
    RunDueWork();
    int64_t low = 0, high = -1;
    if (rd_kafka_get_watermark_offsets(consumer_, options_.model_topic.c_str(),
                                       model_topic::kPartition, &low,
                                       &high) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      high = -1;
    }
    MutexLock s(&stats_mu_);
    if (high >= 0) stats_.end_offset = high;
    if (eof && globals_seen_ && !stats_.caught_up) {
      stats_.caught_up = true;
      ready_.store(true, std::memory_order_release);
      LogInfo(absl::StrCat("replica: caught up with ", options_.model_topic, " at offset ",
                           stats_.next_offset, " (", stats_.items_applied, " item rows)"));
    }
    if (eof) stats_.last_error.clear();
  }
}

void ModelFollower::RunDueWork() {
  {
    MutexLock s(&stats_mu_);
    if (!stats_.work_pending) return;
  }
  model_->RunDeferredWork();
  // Only this thread marks work due (ApplyMessages), so none is pending now unless the learner
  // was replaced meanwhile; its work is then for the next round's fit.
  MutexLock s(&stats_mu_);
  stats_.work_pending = false;
  ++stats_.work_runs;
}

void ModelFollower::Apply(const std::vector<rd_kafka_message_t*>& messages) {
  std::vector<Message> views;
  views.reserve(messages.size());
  for (const rd_kafka_message_t* m : messages) {
    views.push_back({absl::string_view(static_cast<const char*>(m->payload), m->len), m->offset});
  }
  ApplyMessages(views);
}

absl::Status ModelFollower::Bootstrap(absl::string_view exported) {
  std::vector<Message> messages;
  ByteReader r(exported);
  while (!r.done()) {
    absl::string_view message;
    if (!r.GetStringView(&message)) {
      return absl::DataLossError(
          absl::StrCat("item state export: truncated after ", messages.size(), " records"));
    }
    messages.push_back({message, -1});
  }
  if (messages.empty()) return absl::DataLossError("item state export: empty");
  ApplyMessages(messages);
  RunDueWork();
  MutexLock s(&stats_mu_);
  if (stats_.malformed > 0) {
    return absl::DataLossError(absl::StrCat("item state export: ", stats_.malformed,
                                            " records could not be applied; ", stats_.last_error));
  }
  return absl::OkStatus();
}

void ModelFollower::ApplyMessages(const std::vector<Message>& messages) {
  int64_t items = 0, globals = 0, malformed = 0, next_offset = -1, published_ns = 0;
  std::string first_error;
  bool work_pending = false;
  model_->WithLearnerExclusive([&](learner::Learner& learner) {
    for (const Message& m : messages) {
      if (m.offset >= 0) next_offset = m.offset + 1;
      absl::string_view value = m.value;
      model_topic::Header header;
      absl::Status status;
      if (!model_topic::GetHeader(&value, &header)) {
        status = absl::DataLossError("not a model topic message");
      } else if (header.kind == model_topic::kItem) {
        status = learner.FollowItem(header.row, value, header.published_ns);
        items += status.ok() ? 1 : 0;
      } else {
        status = learner.FollowGlobals(value, header.published_ns);
        globals += status.ok() ? 1 : 0;
      }
      if (status.ok()) {
        published_ns = std::max(published_ns, header.published_ns);
      } else {
        ++malformed;
        if (first_error.empty()) {
          first_error = absl::StrCat(m.offset >= 0 ? absl::StrCat("offset ", m.offset) : "export",
                                     ": ", status.message());
        }
      }
    }
    if (absl::Status done = learner.FollowItemsDone(); !done.ok()) {
      ++malformed;
      if (first_error.empty()) first_error = std::string(done.message());
    }
    work_pending = learner.DeferredWorkPending();
  });
  if (next_offset >= 0) model_->PublishModelVersion(next_offset);
  if (!first_error.empty()) {
    MutexLock s(&stats_mu_);
    stats_.last_error = first_error;
  }
  if (!first_error.empty()) {
    LogWarning(absl::StrCat("replica: model topic ", options_.model_topic, ": ", malformed,
                            " message(s) not applied; first: ", first_error));
  }
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  const double lag_ms = published_ns > 0 ? static_cast<double>(now_ns - published_ns) / 1e6 : -1;
  if (published_ns > 0) {
    latest_published_ns_.store(published_ns, std::memory_order_relaxed);
    if (item_lag_observer_) item_lag_observer_(lag_ms / 1e3);
  }
  if (globals > 0) globals_seen_ = true;
  MutexLock s(&stats_mu_);
  stats_.messages += static_cast<int64_t>(messages.size());
  stats_.items_applied += items;
  stats_.globals_applied += globals;
  stats_.malformed += malformed;
  if (next_offset >= 0) stats_.next_offset = next_offset;
  if (lag_ms >= 0) stats_.item_lag_ms = lag_ms;
  // Counted with the messages, so whoever sees them applied also sees the work still due.
  stats_.work_pending = work_pending;
}

absl::Status ModelFollower::Readiness() const {
  if (ready()) return absl::OkStatus();
  MutexLock s(&stats_mu_);
  return absl::UnavailableError(absl::StrCat(
      "catching up with the model topic ", options_.model_topic, ": offset ", stats_.next_offset,
      " of ", stats_.end_offset < 0 ? std::string("?") : std::to_string(stats_.end_offset),
      stats_.last_error.empty() ? "" : absl::StrCat(" (", stats_.last_error, ")")));
}

FollowerStats ModelFollower::stats() const {
  FollowerStats out;
  {
    MutexLock s(&stats_mu_);
    out = stats_;
  }
  const int64_t published = latest_published_ns_.load(std::memory_order_relaxed);
  if (published > 0) {
    out.state_age_s = static_cast<double>(absl::ToUnixNanos(absl::Now()) - published) / 1e9;
  }
  out.client_cache = tracking_id_.load() > 0;
  MutexLock c(&cache_mu_);
  out.users_cached = static_cast<int64_t>(cached_.size());
  return out;
}

std::unique_ptr<RedisClient> ModelFollower::TakeClient() const {
  {
    MutexLock lock(&clients_mu_);
    if (!idle_clients_.empty()) {
      std::unique_ptr<RedisClient> c = std::move(idle_clients_.back());
      idle_clients_.pop_back();
      return c;
    }
  }
  absl::StatusOr<std::unique_ptr<RedisClient>> c =
      RedisClient::Create(redis_, options_.redis_timeout);
  return c.ok() ? *std::move(c) : nullptr;
}

void ModelFollower::ReturnClient(std::unique_ptr<RedisClient> client) const {
  if (client == nullptr) return;
  MutexLock lock(&clients_mu_);
  idle_clients_.push_back(std::move(client));
}

ModelFollower::UserState ModelFollower::LoadUser(absl::string_view user) const {
  return LoadUsers({std::string(user)})[0];
}

std::vector<ModelFollower::UserState> ModelFollower::LoadUsers(
    const std::vector<std::string>& all_users) const {
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  std::vector<UserState> out(all_users.size(), UserState::kNone);
  // Users whose copy Redis has not invalidated since it was read are answered from it; the
  // others are read. Each read marks its users with its token: a copy becomes current only if no
  // invalidation or later read of the user came in between.
  const int64_t epoch = tracking_epoch_.load();
  const int64_t redirect = tracking_id_.load();
  const uint64_t token = next_token_.fetch_add(1);
  std::vector<size_t> misses;
  int64_t saved = 0;
  if (redirect > 0) {
    MutexLock c(&cache_mu_);
    for (size_t i = 0; i < all_users.size(); ++i) {
      const auto [it, absent] = tracked_.try_emplace(all_users[i], token);
      if (!absent && it->second == 0 && fingerprints_.contains(all_users[i])) {
        out[i] = UserState::kRedis;
        ++saved;
      } else {
        it->second = token;
        misses.push_back(i);
      }
    }
  } else {
    misses.resize(all_users.size());
    for (size_t i = 0; i < misses.size(); ++i) misses[i] = i;
  }
  if (misses.empty()) {
    MutexLock s(&stats_mu_);
    stats_.user_reads_saved += saved;
    return out;
  }
  std::vector<std::string> users;
  users.reserve(misses.size());
  for (size_t i : misses) users.push_back(all_users[i]);

  absl::StatusOr<std::vector<std::optional<std::string>>> states =
      absl::UnavailableError("redis: waiting before asking again after an error");
  double seconds = 0;
  bool asked = false, tracked = false;
  std::string tracking_error;
  if (now_ns >= redis_down_until_ns_.load(std::memory_order_relaxed)) {
    std::vector<std::string> keys;
    keys.reserve(users.size());
    for (const std::string& user : users) keys.push_back(UserStateKey(options_.key_prefix, user));
    std::unique_ptr<RedisClient> client = TakeClient();
    const absl::Time t = absl::Now();
    states = client != nullptr ? client->GetManyTracked(keys, redirect, &tracked)
                               : absl::UnavailableError("redis: no client");
    seconds = absl::ToDoubleSeconds(absl::Now() - t);
    asked = true;
    if (states.ok() && redirect > 0 && !tracked) tracking_error = client->tracking_error();
    ReturnClient(std::move(client));
    if (!states.ok()) {
      redis_down_until_ns_.store(now_ns + absl::ToInt64Nanoseconds(options_.redis_retry),
                                 std::memory_order_relaxed);
    }
  }
  // A copy read under this token is current while the mark is still the token and no loss of the
  // invalidations' connection came in between.
  const bool may_keep = tracked && tracking_epoch_.load() == epoch;
  int64_t not_found = 0, from_cache = 0;
  if (states.ok()) {
    // The states that differ from the replica's copies (or that it has none of) are decoded, all
    // under one hold of the lock; the others are already there.
    std::vector<size_t> changed;
    std::vector<uint64_t> prints(users.size(), 0);
    {
      MutexLock c(&cache_mu_);
      for (size_t i = 0; i < users.size(); ++i) {
        const std::optional<std::string>& state = (*states)[i];
        if (!state.has_value()) {
          ++not_found;
          SettleRead(users[i], token, false);
          if (fingerprints_.contains(users[i])) changed.push_back(i);  // gone: forget it
          continue;
        }
        prints[i] = absl::HashOf(*state);
        const auto it = fingerprints_.find(users[i]);
        if (it != fingerprints_.end() && it->second == prints[i]) {
          out[misses[i]] = UserState::kRedis;
          SettleRead(users[i], token, may_keep);
        } else {
          changed.push_back(i);
        }
      }
    }
    if (!changed.empty()) {
      std::vector<int64_t> ages;
      std::string first_error;
      model_->WithLearnerExclusive([&](learner::Learner& learner) {
        MutexLock c(&cache_mu_);
        for (size_t i : changed) {
          const std::string& user = users[i];
          const int32_t known = learner.users().Find(user);
          const std::optional<std::string>& state = (*states)[i];
          if (!state.has_value()) {  // gone from Redis (expired): so from here
            if (known >= 0) learner.ForgetUser(known);
            fingerprints_.erase(user);
            continue;
          }
          // A later read made the replica's copy current meanwhile: this state is not newer.
          if (const auto it = tracked_.find(user);
              it != tracked_.end() && it->second == 0 && fingerprints_.contains(user)) {
            out[misses[i]] = UserState::kRedis;
            continue;
          }
          absl::StatusOr<int32_t> row = learner.FollowUser(*state);
          if (!row.ok()) {
            if (first_error.empty()) {
              first_error = absl::StrCat("user '", user, "': ", row.status().message());
            }
            out[misses[i]] = known >= 0 ? UserState::kCache : UserState::kNone;
            SettleRead(user, token, false);
            continue;
          }
          out[misses[i]] = UserState::kRedis;
          if (const int64_t applied = learner.history(*row).applied_ns(); applied > 0) {
            ages.push_back(now_ns - applied);
          }
          if (fingerprints_.insert_or_assign(user, prints[i]).second) cached_.push_back(user);
          SettleRead(user, token, may_keep);
          while (static_cast<int64_t>(cached_.size()) > std::max<int64_t>(1, options_.max_users)) {
            const int32_t oldest = learner.users().Find(cached_.front());
            fingerprints_.erase(cached_.front());
            tracked_.erase(cached_.front());
            cached_.pop_front();
            if (oldest >= 0 && oldest != *row) learner.ForgetUser(oldest);
          }
        }
      });
      if (!first_error.empty()) {
        LogWarning(absl::StrCat("replica: a user's state in Redis: ", first_error));
      }
      if (user_age_observer_) {
        for (int64_t age : ages) user_age_observer_(static_cast<double>(age) / 1e9);
      }
    }
  } else {
    // The connection that tracked the reads so far may be gone with their invalidations.
    ForgetTracked();
    model_->WithLearner([&](const learner::Learner& learner) {
      for (size_t i = 0; i < users.size(); ++i) {
        if (learner.users().Find(users[i]) >= 0) {
          out[misses[i]] = UserState::kCache;
          ++from_cache;
        }
      }
    });
  }
  if (!tracking_error.empty() &&
      now_ns - tracking_warned_ns_.exchange(now_ns) > absl::ToInt64Nanoseconds(absl::Minutes(1))) {
    LogWarning(absl::StrCat("replica: Redis does not track reads (", tracking_error,
                            "): every request reads its user; client-side caching needs "
                            "Redis >= 6"));
  }
  const int64_t n = static_cast<int64_t>(users.size());
  MutexLock s(&stats_mu_);
  if (asked) stats_.user_fetches += n;
  stats_.redis_seconds += seconds;
  if (!states.ok()) stats_.user_fetch_errors += n;
  stats_.users_from_cache += from_cache;
  stats_.users_not_found += not_found;
  stats_.user_reads_saved += saved;
  if (states.ok() && redirect > 0 && !tracked) stats_.tracking_refused += n;
  return out;
}

FollowerReader::~FollowerReader() { Drain(); }

void FollowerReader::Drain() const {
  std::vector<Request> requests;
  {
    MutexLock lock(&queue_mu_);
    requests.swap(queue_);
  }
  if (requests.empty()) return;
  std::vector<std::string> users;
  users.reserve(requests.size());
  for (const Request& r : requests) users.push_back(r.user);
  const std::vector<ModelFollower::UserState> states = follower_->LoadUsers(users);
  BurstEnd burst;  // the requests are scored together when it closes
  for (size_t i = 0; i < requests.size(); ++i) Score(requests[i], states[i]);
}

void FollowerReader::Score(Request& r, ModelFollower::UserState state) const {
  const char* source = state == ModelFollower::UserState::kRedis   ? "redis"
                       : state == ModelFollower::UserState::kCache ? "cache"
                                                                   : "none";
  model_->RecommendAsync(r.user, r.k, r.exclude_seen, r.exclude_items,
                         [source, done = std::move(r.done)](absl::StatusOr<RecommendResult> res) {
                           if (res.ok()) res->user_state = source;
                           done(std::move(res));
                         });
}

void FollowerReader::RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                                    const std::vector<std::string>& exclude_items,
                                    RecommendDone done) const {
  {
    MutexLock lock(&queue_mu_);
    queue_.push_back(Request{std::string(user), k, exclude_seen, exclude_items, std::move(done)});
  }
  // In a burst: with the rest of the burst, when it ends; else now.
  if (!BurstEnd::Defer(this, [this] { Drain(); })) Drain();
}

UserInfo FollowerReader::User(absl::string_view user) const {
  follower_->LoadUser(user);
  return model_->User(user);
}

}  // namespace freshet::engine
