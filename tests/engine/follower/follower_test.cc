// Serving replicas (engine/follower/): a learner publishes to Kafka's mock cluster and a real
// redis-server; a replica follows them and must answer every user exactly as the learner does,
// for every algorithm; and when Redis goes away and comes back, nothing the learner learnt is
// lost on the way to the replicas.
#include "engine/follower/follower.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/burst_end.h"
#include "engine/follower/model_topic.h"
#include "engine/follower/publisher.h"
#include "engine/live_model.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_producer.h"
#include "tests/common/redis_server.h"
#include "tests/learner/generated_events.h"

namespace freshet::engine {
namespace {

using stream::DevBroker;
using testing::RedisServer;

struct Side {
  std::unique_ptr<LiveModel> model;
};

config::Config SmallConfig() {
  config::Config config;
  config.dim = 16;
  // blend's ease is fitted by learner and replica each, at their own times, from the table each
  // has: fitted after every event (and by the replica again when a round's rows come in two
  // batches), both fits are of the same table when they are compared.
  config.blend_ease_refit = 1;
  config.blend_ease_items = 64;
  config.blend_topics_items = 64;  // and topics with it, over as few items
  return config;
}

// Waits until `done()` or 20 s.
template <typename Fn>
bool WaitFor(Fn done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::string Answer(const ModelReader& reader, const std::string& user, std::string* source) {
  RecommendResult result;
  const absl::Status s = reader.RecommendFor(user, 10, true, {}, &result);
  if (!s.ok()) return s.ToString();
  if (source != nullptr) *source = result.user_state;
  std::string out = absl::StrCat(result.personalized ? "personalized" : "popular",
                                 " events=", result.user.events, ":");
  for (const ScoredId& item : result.items) absl::StrAppend(&out, " ", item.item, "=", item.score);
  return out;
}

class FollowerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto broker = DevBroker::Start();
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    ASSERT_TRUE(broker_->CreateTopic("model", 1).ok());
    redis_ = std::make_unique<RedisServer>();
    if (!redis_->ok()) GTEST_SKIP() << "redis-server did not start";
    backend_ = *kernels::CreateBackend("cpu");
  }

  PublisherOptions Publishing() const {
    PublisherOptions o;
    o.brokers = broker_->bootstrap_servers();
    o.model_topic = "model";
    o.redis_url = absl::StrCat("redis://127.0.0.1:", redis_->port());
    o.redis_timeout = absl::Milliseconds(200);
    return o;
  }
  FollowerOptions Following() const {
    FollowerOptions o;
    o.brokers = broker_->bootstrap_servers();
    o.model_topic = "model";
    o.redis_url = absl::StrCat("redis://127.0.0.1:", redis_->port());
    o.redis_retry = absl::Milliseconds(1);
    return o;
  }
  // Publishes what the learner changed and waits until the replica has applied all of it.
  void Sync(ModelPublisher& publisher, const ModelFollower& follower) {
    ASSERT_TRUE(publisher.PublishOnce().ok());
    ASSERT_TRUE(publisher.FlushKafka(absl::Seconds(10)).ok());
    const int64_t produced =
        publisher.stats().items_published + publisher.stats().globals_published;
    // Applied, and the work the round made due (blend's ease fit) done.
    ASSERT_TRUE(WaitFor([&] {
      const FollowerStats stats = follower.stats();
      return stats.messages >= produced && !stats.work_pending;
    })) << follower.stats().messages
        << " of " << produced;
    // And the users the round wrote to Redis are no longer answered from the replica's copies.
    ASSERT_TRUE(follower.SyncInvalidations(absl::Seconds(10)).ok());
  }

  // A bpr learner that has learnt `events` and published them, and a ready replica following it.
  struct Pair {
    std::unique_ptr<LiveModel> learner;
    std::unique_ptr<ModelPublisher> publisher;
    std::unique_ptr<LiveModel> replica;
    std::unique_ptr<ModelFollower> follower;
  };
  void StartPair(const std::vector<stream::Event>& events, const FollowerOptions& following,
                 Pair* pair) {
    const config::Config config = SmallConfig();
    auto learner = LiveModel::Create("bpr", config, backend_.get());
    ASSERT_TRUE(learner.ok()) << learner.status();
    pair->learner = *std::move(learner);
    pair->learner->Apply(events);
    auto publisher = ModelPublisher::Create(Publishing(), pair->learner.get());
    ASSERT_TRUE(publisher.ok()) << publisher.status();
    pair->publisher = *std::move(publisher);
    auto replica = LiveModel::Create("bpr", config, backend_.get());
    ASSERT_TRUE(replica.ok()) << replica.status();
    pair->replica = *std::move(replica);
    auto follower = ModelFollower::Create(following, pair->replica.get());
    ASSERT_TRUE(follower.ok()) << follower.status();
    pair->follower = *std::move(follower);
    ASSERT_TRUE(pair->follower->Start().ok());
    Sync(*pair->publisher, *pair->follower);
    ASSERT_TRUE(WaitFor([&] { return pair->follower->ready(); })) << pair->follower->Readiness();
  }

  std::unique_ptr<DevBroker> broker_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<kernels::Backend> backend_;
};

TEST_P(FollowerTest, ReplicaAnswersEveryUserAsTheLearnerDoes) {
  const std::string algorithm = GetParam();
  const config::Config config = SmallConfig();
  auto learner = LiveModel::Create(algorithm, config, backend_.get());
  ASSERT_TRUE(learner.ok()) << learner.status();
  const std::vector<stream::Event> events = learner::GeneratedEvents(6000, 300, 200, 5);
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(0, 4000));
  auto publisher = ModelPublisher::Create(Publishing(), learner->get());
  ASSERT_TRUE(publisher.ok()) << publisher.status();

  auto replica = LiveModel::Create(algorithm, config, backend_.get());
  ASSERT_TRUE(replica.ok());
  auto follower = ModelFollower::Create(Following(), replica->get());
  ASSERT_TRUE(follower.ok()) << follower.status();
  ASSERT_TRUE((*follower)->Start().ok());
  Sync(**publisher, **follower);
  ASSERT_TRUE(WaitFor([&] { return (*follower)->ready(); })) << (*follower)->Readiness();
  const FollowerReader reader(replica->get(), follower->get());

  const auto compare = [&](absl::string_view when) {
    int known = 0;
    for (int u = 0; u < 300; u += 7) {
      const std::string user = absl::StrCat("u", u);
      std::string source;
      const std::string want = Answer(**learner, user, nullptr);
      EXPECT_EQ(Answer(reader, user, &source), want) << when << ", user " << user;
      if (want.find(" events=0:") == std::string::npos) {  // the learner knows the user
        ++known;
        EXPECT_EQ(source, "redis") << user;
      }
    }
    EXPECT_GT(known, 10) << when;
    EXPECT_EQ(Answer(reader, "nobody", nullptr), Answer(**learner, "nobody", nullptr)) << when;
  };
  compare("after the first publication");

  // A burst's requests (an HTTP I/O thread's round) are answered when it ends, as one batch: the
  // users read from Redis in one round trip, and the same answers.
  {
    std::vector<std::string> got(20);
    int answered = 0;
    {
      BurstEnd burst;
      for (int u = 0; u < 20; ++u) {
        reader.RecommendAsync(absl::StrCat("u", u), 10, true, {},
                              [&got, &answered, u](absl::StatusOr<RecommendResult> r) {
                                ++answered;
                                if (!r.ok()) return;
                                got[u] = absl::StrCat(r->personalized ? "personalized" : "popular",
                                                      " events=", r->user.events, ":");
                                for (const ScoredId& item : r->items) {
                                  absl::StrAppend(&got[u], " ", item.item, "=", item.score);
                                }
                              });
      }
      EXPECT_EQ(answered, 0) << "answered before the burst ended";
    }
    ASSERT_EQ(answered, 20);
    for (int u = 0; u < 20; ++u) {
      EXPECT_EQ(got[u], Answer(**learner, absl::StrCat("u", u), nullptr)) << "u" << u;
    }
  }

  // More learning: the replica follows the changed items and reads the changed users again.
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(4000));
  Sync(**publisher, **follower);
  compare("after following the changes");
  EXPECT_EQ((*follower)->stats().malformed, 0);
  EXPECT_GT((*publisher)->stats().users_published, 0);
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, FollowerTest,
                         ::testing::Values("bpr", "ials", "cooc", "hybrid", "popularity", "blend"));

TEST_F(FollowerTest, RedisOutageLosesNothingAndReplicasKeepAnswering) {
  const config::Config config = SmallConfig();
  auto learner = LiveModel::Create("bpr", config, backend_.get());
  ASSERT_TRUE(learner.ok());
  const std::vector<stream::Event> events = learner::GeneratedEvents(3000, 100, 80, 9);
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(0, 2000));
  auto publisher = ModelPublisher::Create(Publishing(), learner->get());
  ASSERT_TRUE(publisher.ok());
  auto replica = LiveModel::Create("bpr", config, backend_.get());
  auto follower = ModelFollower::Create(Following(), replica->get());
  ASSERT_TRUE(follower.ok());
  ASSERT_TRUE((*follower)->Start().ok());
  Sync(**publisher, **follower);
  ASSERT_TRUE(WaitFor([&] { return (*follower)->ready(); }));
  const FollowerReader reader(replica->get(), follower->get());
  std::string source;
  ASSERT_EQ(Answer(reader, "u1", &source), Answer(**learner, "u1", nullptr));
  ASSERT_EQ(source, "redis");

  // Redis goes away: the learner keeps learning and remembers whom it could not write; the
  // replica answers from its last copy of u1, and popularity for a user it never read.
  const int port = redis_->port();
  redis_.reset();
  ASSERT_TRUE((*follower)->SyncInvalidations(absl::Seconds(10)).ok());  // it knows
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(2000));
  EXPECT_FALSE((*publisher)->PublishOnce().ok());
  EXPECT_GT((*publisher)->stats().users_pending, 0);
  EXPECT_GT((*publisher)->stats().redis_errors, 0);
  ASSERT_TRUE(WaitFor([&] {
    return (*follower)->stats().messages >=
           (*publisher)->stats().items_published + (*publisher)->stats().globals_published;
  }));
  const std::string cached = Answer(reader, "u1", &source);
  EXPECT_EQ(source, "cache");
  EXPECT_NE(cached.find("personalized"), std::string::npos) << cached;
  Answer(reader, "u2", &source);
  EXPECT_EQ(source, "none");
  EXPECT_GT((*follower)->stats().user_fetch_errors, 0);

  // Redis is back (empty: it kept nothing): every user learnt during the outage is written again.
  redis_ = std::make_unique<RedisServer>(port);
  ASSERT_TRUE(redis_->ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the publisher's retry pause
  ASSERT_TRUE((*publisher)->PublishOnce().ok());
  EXPECT_EQ((*publisher)->stats().users_pending, 0);
  ASSERT_TRUE((*follower)->SyncInvalidations(absl::Seconds(10)).ok());
  for (const char* user : {"u1", "u2", "u5"}) {
    const std::string want = Answer(**learner, user, nullptr);
    if (want.rfind("personalized", 0) != 0) continue;  // no event during the outage
    const std::string got = Answer(reader, user, &source);
    EXPECT_EQ(got, want) << user;
    EXPECT_EQ(source, "redis") << user;
  }
}

// Whatever Redis holds under a user's key (another writer, a corrupt value, a truncated one), a
// replica answers: from its last copy of the user, else popularity, and says which.
TEST_F(FollowerTest, HostileUserStatesInRedisAreRefused) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(
      StartPair(learner::GeneratedEvents(2000, 50, 40, 17), Following(), &pair));
  const ModelFollower* follower = pair.follower.get();
  const FollowerReader reader(pair.replica.get(), follower);
  std::string source;
  const std::string u1 = Answer(reader, "u1", &source);
  ASSERT_EQ(source, "redis");

  auto redis = RedisClient::Create({"127.0.0.1", redis_->port()}, absl::Seconds(1));
  ASSERT_TRUE(redis.ok());
  std::string state;
  {
    auto got = (*redis)->Get("freshet:user:{u1}");
    ASSERT_TRUE(got.ok() && got->has_value());
    state = **got;
  }
  for (const std::string& bad :
       {std::string(), std::string("garbage"), state.substr(0, state.size() / 2),
        std::string(1, '\x01') + std::string(5000, '\xff'), state + "trailing"}) {
    ASSERT_TRUE(
        (*redis)->SetMany({{"freshet:user:{u1}", bad}, {"freshet:user:{zz}", bad}}, 0).ok());
    ASSERT_TRUE(follower->SyncInvalidations(absl::Seconds(10)).ok());
    EXPECT_EQ(Answer(reader, "u1", &source), u1);  // the last copy
    EXPECT_EQ(source, "cache");
    const std::string zz = Answer(reader, "zz", &source);
    EXPECT_EQ(source, "none");
    EXPECT_NE(zz.find("popular"), std::string::npos) << zz;
  }
}

// Client-side caching: a user read once is answered from the replica's copy without reading
// Redis again, until Redis invalidates it; then the next answer is the learner's new one. When the
// connection that receives the invalidations is lost, no copy is trusted until it is back.
TEST_F(FollowerTest, ClientCacheAnswersFromCopiesUntilRedisInvalidatesThem) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(
      StartPair(learner::GeneratedEvents(2000, 50, 40, 19), Following(), &pair));
  const ModelFollower& f = *pair.follower;
  ASSERT_TRUE(WaitFor([&] { return f.stats().client_cache; }));
  const FollowerReader reader(pair.replica.get(), &f);
  const LiveModel* learner = pair.learner.get();
  std::string source;

  ASSERT_EQ(Answer(reader, "u1", &source), Answer(*learner, "u1", nullptr));
  EXPECT_EQ(source, "redis");
  const int64_t reads = f.stats().user_fetches;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Answer(reader, "u1", &source), Answer(*learner, "u1", nullptr));
    EXPECT_EQ(source, "redis");
  }
  EXPECT_EQ(f.stats().user_fetches, reads) << "read again though unchanged";
  EXPECT_EQ(f.stats().user_reads_saved, 3);

  // A new event of u1: the learner writes it, Redis invalidates the replica's copy, and the next
  // answer reads it.
  const auto learn = [&](const char* item) {
    stream::Event e;
    e.user = "u1";
    e.item = item;
    e.ts_ms = 1'900'000'000'000;
    pair.learner->Apply({e});
    Sync(*pair.publisher, f);  // items and users, and Redis's invalidations, through
  };
  const int64_t invalidations = f.stats().invalidations;
  learn("i3");
  EXPECT_GT(f.stats().invalidations, invalidations);
  const std::string after = Answer(*learner, "u1", nullptr);
  EXPECT_EQ(Answer(reader, "u1", &source), after);
  EXPECT_EQ(f.stats().user_fetches, reads + 1);
  EXPECT_EQ(Answer(reader, "u1", &source), after);  // and kept again
  EXPECT_EQ(f.stats().user_fetches, reads + 1);

  // The invalidations' connection is killed, and u1 changes again meanwhile: the replica forgets
  // which copies were current, reads u1, and answers the learner's new state.
  ASSERT_EQ(std::system(
                absl::StrCat("redis-cli -p ", redis_->port(), " CLIENT KILL TYPE pubsub >/dev/null")
                    .c_str()),
            0);
  learn("i4");
  EXPECT_EQ(Answer(reader, "u1", &source), Answer(*learner, "u1", nullptr));
  EXPECT_EQ(source, "redis");
  // It connects again and keeps copies again.
  ASSERT_TRUE(WaitFor([&] { return f.stats().client_cache; }));
  Answer(reader, "u1", nullptr);
  const int64_t saved = f.stats().user_reads_saved;
  EXPECT_EQ(Answer(reader, "u1", nullptr), Answer(*learner, "u1", nullptr));
  EXPECT_EQ(f.stats().user_reads_saved, saved + 1);
}

TEST_F(FollowerTest, WithoutClientCacheEveryRequestReadsRedis) {
  FollowerOptions options = Following();
  options.client_cache = false;
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(StartPair(learner::GeneratedEvents(1000, 30, 40, 29), options, &pair));
  const ModelFollower* follower = pair.follower.get();
  const FollowerReader reader(pair.replica.get(), follower);
  const LiveModel* learner = pair.learner.get();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Answer(reader, "u2", nullptr), Answer(*learner, "u2", nullptr));
  }
  EXPECT_EQ(follower->stats().user_fetches, 3);
  EXPECT_EQ(follower->stats().user_reads_saved, 0);
  EXPECT_FALSE(follower->stats().client_cache);
}

// The model topic unavailable: a replica keeps answering from the item state it has, says how
// old that is, and follows again once the broker is back.
TEST_F(FollowerTest, ModelTopicOutageKeepsTheItemStateAndReportsItsAge) {
  const config::Config config = SmallConfig();
  auto learner = LiveModel::Create("cooc", config, backend_.get());
  ASSERT_TRUE(learner.ok());
  const std::vector<stream::Event> events = learner::GeneratedEvents(3000, 60, 50, 23);
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(0, 2000));
  auto publisher = ModelPublisher::Create(Publishing(), learner->get());
  ASSERT_TRUE(publisher.ok());
  auto replica = LiveModel::Create("cooc", config, backend_.get());
  auto follower = ModelFollower::Create(Following(), replica->get());
  ASSERT_TRUE((*follower)->Start().ok());
  Sync(**publisher, **follower);
  ASSERT_TRUE(WaitFor([&] { return (*follower)->ready(); }));
  const FollowerReader reader(replica->get(), follower->get());
  const std::string before = Answer(reader, "u3", nullptr);
  ASSERT_EQ(before, Answer(**learner, "u3", nullptr));

  ASSERT_TRUE(broker_->SetBrokerUp(1, false).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Answer(reader, "u3", nullptr), before);
  EXPECT_TRUE((*follower)->ready());                 // still serving: the state is old, not gone
  EXPECT_GE((*follower)->stats().state_age_s, 1.5);  // nothing newer than before the outage

  ASSERT_TRUE(broker_->SetBrokerUp(1, true).ok());
  const absl::Time up = absl::Now();
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(2000));
  ASSERT_TRUE((*publisher)->PublishOnce().ok());
  ASSERT_TRUE((*publisher)->FlushKafka(absl::Seconds(30)).ok());
  const int64_t produced =
      (*publisher)->stats().items_published + (*publisher)->stats().globals_published;
  ASSERT_TRUE(WaitFor([&] { return (*follower)->stats().messages >= produced; }))
      << (*follower)->stats().messages << " of " << produced;
  // The state it reports on is one published since the broker came back.
  EXPECT_LE((*follower)->stats().state_age_s, absl::ToDoubleSeconds(absl::Now() - up));
  ASSERT_TRUE((*follower)->SyncInvalidations(absl::Seconds(10)).ok());
  for (const char* user : {"u1", "u3", "u8"}) {
    EXPECT_EQ(Answer(reader, user, nullptr), Answer(**learner, user, nullptr)) << user;
  }
}

TEST_F(FollowerTest, MalformedModelTopicMessagesAreCountedAndSkipped) {
  const config::Config config = SmallConfig();
  auto learner = LiveModel::Create("cooc", config, backend_.get());
  ASSERT_TRUE(learner.ok());
  (*learner)->Apply(learner::GeneratedEvents(500, 50, 40, 3));
  {
    stream::KafkaProducerOptions o;
    o.brokers = broker_->bootstrap_servers();
    auto producer = stream::KafkaProducer::Create(o);
    ASSERT_TRUE(producer.ok());
    std::string item;  // a truncated item row, and bytes that are no model message at all
    model_topic::PutHeader({model_topic::kItem, 1, 0}, &item);
    item += "\x01";
    ASSERT_TRUE((*producer)->ProduceTo("model", 0, "ix", item).ok());
    ASSERT_TRUE((*producer)->ProduceTo("model", 0, "junk", "not a model message").ok());
    ASSERT_TRUE((*producer)->Flush(absl::Seconds(10)).ok());
  }
  auto publisher = ModelPublisher::Create(Publishing(), learner->get());
  ASSERT_TRUE(publisher.ok());
  auto replica = LiveModel::Create("cooc", config, backend_.get());
  auto follower = ModelFollower::Create(Following(), replica->get());
  ASSERT_TRUE((*follower)->Start().ok());
  ASSERT_TRUE((*publisher)->PublishOnce().ok());
  ASSERT_TRUE((*publisher)->FlushKafka(absl::Seconds(10)).ok());
  ASSERT_TRUE(WaitFor([&] { return (*follower)->ready(); })) << (*follower)->Readiness();
  EXPECT_EQ((*follower)->stats().malformed, 2);
  const FollowerReader reader(replica->get(), follower->get());
  for (const char* user : {"u0", "u3", "u7"}) {
    EXPECT_EQ(Answer(reader, user, nullptr), Answer(**learner, user, nullptr)) << user;
  }
}

// A replica that starts from a learner's export, and then reads a topic that begins with older
// states of the same rows, keeps the newer ones: it answers like the learner.
TEST_F(FollowerTest, BootstrapFromAnExportThenOlderTopicStatesAreSkipped) {
  const config::Config config = SmallConfig();
  auto learner = LiveModel::Create("hybrid", config, backend_.get());
  ASSERT_TRUE(learner.ok());
  const std::vector<stream::Event> events = learner::GeneratedEvents(4000, 150, 120, 13);
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(0, 2000));
  auto publisher = ModelPublisher::Create(Publishing(), learner->get());
  ASSERT_TRUE(publisher.ok());
  ASSERT_TRUE((*publisher)->PublishOnce().ok());  // the topic: the state after 2000 events
  ASSERT_TRUE((*publisher)->FlushKafka(absl::Seconds(10)).ok());
  (*learner)->Apply(absl::MakeConstSpan(events).subspan(2000));
  std::string exported = (*learner)->WithLearner(
      [](const learner::Learner& l) { return ExportItemState(l, absl::ToUnixNanos(absl::Now())); });
  // Only the users go out now (the items' newer states are in the export, not the topic).
  ASSERT_TRUE((*publisher)->PublishOnce().ok());

  auto replica = LiveModel::Create("hybrid", config, backend_.get());
  auto follower = ModelFollower::Create(Following(), replica->get());
  ASSERT_TRUE(follower.ok());
  EXPECT_EQ((*follower)->Bootstrap(exported.substr(0, exported.size() / 2)).code(),
            absl::StatusCode::kDataLoss);  // a truncated export says so
  ASSERT_TRUE((*follower)->Bootstrap(exported).ok());
  ASSERT_TRUE((*follower)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*follower)->ready(); })) << (*follower)->Readiness();
  const FollowerReader reader(replica->get(), follower->get());
  for (int u = 0; u < 150; u += 11) {
    const std::string user = absl::StrCat("u", u);
    EXPECT_EQ(Answer(reader, user, nullptr), Answer(**learner, user, nullptr)) << user;
  }
}

TEST(FollowerOptionsTest, BadAddressesAreClearErrors) {
  EXPECT_FALSE(ParseRedisUrl("localhost:6379").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://localhost").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://:6379").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:70000").ok());
  auto ok = ParseRedisUrl("redis://10.0.0.5:6380/");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->host, "10.0.0.5");
  EXPECT_EQ(ok->port, 6380);
  EXPECT_EQ(UserStateKey("freshet:user:", "alice"), "freshet:user:{alice}");
}

}  // namespace
}  // namespace freshet::engine
