// The replicas' rendezvous (engine/replicas/rendezvous.h) through a file and through a real
// redis-server on a free loopback port: a blob published by one side reaches a waiter that started
// first, sizes are checked, a missing publisher is a timeout, and Redis outages are retried or
// reported.
#include "engine/replicas/rendezvous.h"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/common/redis_server.h"

namespace freshet::engine {
namespace {

std::string Blob() {
  std::string blob(128, '\0');  // an NCCL unique id's size, with every byte value in it
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 2);
  return blob;
}

std::string FreshFile(const std::string& name) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/freshet_rendezvous_", name, "_", getpid());
  std::remove(path.c_str());
  return path;
}

// A waiter that starts before the publisher gets the blob.
void ExpectHandOver(const std::string& location) {
  absl::StatusOr<std::string> got;
  std::thread waiter([&] { got = WaitForBlob(location, 128, absl::Seconds(10)); });
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(PublishBlob(location, Blob()).ok());
  waiter.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Blob());
  // Later waiters find it at once.
  got = WaitForBlob(location, 128, absl::Milliseconds(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Blob());
}

TEST(RendezvousTest, AFileHandsTheBlobOver) {
  const std::string path = FreshFile("handover");
  ExpectHandOver(path);
  std::remove(path.c_str());
}

#if FRESHET_HAVE_HIREDIS
TEST(RendezvousTest, ARedisKeyHandsTheBlobOver) {
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok()) << "redis-server did not start (scripts/bootstrap.sh installs it)";
  ExpectHandOver(redis.Location(absl::StrCat("freshet-test-", getpid())));
}
#endif  // FRESHET_HAVE_HIREDIS

TEST(RendezvousTest, NothingPublishedIsATimeoutAndAWrongSizeIsDataLoss) {
  const std::string path = FreshFile("missing");
  absl::StatusOr<std::string> got = WaitForBlob(path, 128, absl::Milliseconds(30));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
  ASSERT_TRUE(PublishBlob(path, "short").ok());
  got = WaitForBlob(path, 128, absl::Seconds(1));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  std::remove(path.c_str());

#if FRESHET_HAVE_HIREDIS
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok());
  got = WaitForBlob(redis.Location("never"), 128, absl::Milliseconds(30));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
#endif
}

TEST(RendezvousTest, BadLocationsAndAnUnreachableRedisAreClearErrors) {
  for (const std::string bad : {"", "redis://", "redis://host/key", "redis://host:port/key",
                                "redis://:6379/key", "redis://host:6379/", "redis://h:70000/k"}) {
    EXPECT_EQ(PublishBlob(bad, Blob()).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(WaitForBlob(bad, 128, absl::Milliseconds(1)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(PublishBlob("/nonexistent/dir/id", Blob()).code(), absl::StatusCode::kUnavailable);
#if FRESHET_HAVE_HIREDIS
  // A Redis that is gone: publishing fails at once, waiting times out naming the last error.
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok());
  const std::string location = redis.Location("gone");
  redis.Stop();
  const absl::Status publish = PublishBlob(location, Blob());
  EXPECT_EQ(publish.code(), absl::StatusCode::kUnavailable) << publish;
  const absl::Status wait = WaitForBlob(location, 128, absl::Milliseconds(50)).status();
  EXPECT_EQ(wait.code(), absl::StatusCode::kDeadlineExceeded) << wait;
  EXPECT_NE(wait.message().find("cannot reach Redis"), std::string::npos) << wait;
#else
  // Without a Redis client a Redis location is a clear error at once, not a wait.
  const absl::Status publish = PublishBlob("redis://127.0.0.1:6379/k", Blob());
  EXPECT_EQ(publish.code(), absl::StatusCode::kFailedPrecondition) << publish;
  EXPECT_NE(publish.message().find("without a Redis client"), std::string::npos) << publish;
  const absl::Status wait =
      WaitForBlob("redis://127.0.0.1:6379/k", 128, absl::Seconds(30)).status();
  EXPECT_EQ(wait.code(), absl::StatusCode::kFailedPrecondition) << wait;
#endif
}

#if FRESHET_HAVE_HIREDIS
TEST(RendezvousTest, AWaiterRetriesUntilRedisComesUp) {
  int port = 0;
  {
    testing::RedisServer probe;  // finds a port that a redis-server can take, then frees it
    ASSERT_TRUE(probe.ok());
    port = probe.port();
  }
  const std::string location = absl::StrCat("redis://127.0.0.1:", port, "/late");
  absl::StatusOr<std::string> got;
  std::thread waiter([&] { got = WaitForBlob(location, 128, absl::Seconds(20)); });
  absl::SleepFor(absl::Milliseconds(100));  // connection refused meanwhile
  testing::RedisServer redis(port);
  ASSERT_TRUE(redis.ok());
  ASSERT_TRUE(PublishBlob(location, Blob()).ok());
  waiter.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Blob());
}

#endif  // FRESHET_HAVE_HIREDIS

}  // namespace
}  // namespace freshet::engine
