#include "engine/follower/redis_client.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#ifdef FRESHET_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

namespace freshet::engine {

absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "redis://";
  const auto bad = [&url] {
    return absl::InvalidArgumentError(
        absl::StrCat("redis address '", url, "': expected redis://HOST:PORT"));
  };
  if (!absl::StartsWith(url, kScheme)) return bad();
  absl::string_view rest = url.substr(kScheme.size());
  if (absl::EndsWith(rest, "/")) rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad();
  RedisAddress address;
  address.host = std::string(rest.substr(0, colon));
  if (!absl::SimpleAtoi(rest.substr(colon + 1), &address.port) || address.port <= 0 ||
      address.port > 65535 || absl::StrContains(address.host, "/")) {
    return bad();
  }
  return address;
}

std::string UserStateKey(absl::string_view prefix, absl::string_view user) {
  return absl::StrCat(prefix, "{", user, "}");
}

#ifdef FRESHET_HAVE_HIREDIS
namespace {

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

class HiredisClient final : public RedisClient {
 public:
  HiredisClient(RedisAddress address, absl::Duration timeout)
      : address_(std::move(address)), timeout_(absl::ToTimeval(timeout)) {}

  absl::Status SetMany(const std::vector<std::pair<std::string, std::string>>& entries,
                       int64_t ttl_s) override {
    if (entries.empty()) return absl::OkStatus();
    if (absl::Status s = Connect(); !s.ok()) return s;
    for (const auto& [key, value] : entries) {
      int rc;
      if (ttl_s > 0) {
        const std::string ttl = std::to_string(ttl_s);
        rc = redisAppendCommand(c_.get(), "SET %b %b EX %s", key.data(), key.size(), value.data(),
                                value.size(), ttl.c_str());
      } else {
        rc = redisAppendCommand(c_.get(), "SET %b %b", key.data(), key.size(), value.data(),
                                value.size());
      }
      if (rc != REDIS_OK) return Fail("queueing SET");
    }
    absl::Status status;
    for (size_t i = 0; i < entries.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(c_.get(), &raw) != REDIS_OK) return Fail("SET");
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_ERROR && status.ok()) {
        status = absl::UnavailableError(absl::StrCat("redis ", Where(), ": SET answered ",
                                                     std::string(reply->str, reply->len)));
      }
    }
    return status;
  }

  absl::StatusOr<std::vector<std::optional<std::string>>> GetMany(
      const std::vector<std::string>& keys) override {
    std::vector<std::optional<std::string>> values(keys.size());
    if (keys.empty()) return values;
    if (absl::Status s = Connect(); !s.ok()) return s;
    for (const std::string& key : keys) {
      if (redisAppendCommand(c_.get(), "GET %b", key.data(), key.size()) != REDIS_OK) {
        return Fail("queueing GET");
      }
    }
    absl::Status status;
    for (size_t i = 0; i < keys.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(c_.get(), &raw) != REDIS_OK) return Fail("GET");
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_STRING) {
        values[i].emplace(reply->str, reply->len);
      } else if (reply->type != REDIS_REPLY_NIL && status.ok()) {
        status = absl::UnavailableError(
            absl::StrCat("redis ", Where(), ": GET answered type ", reply->type, " ",
                         reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                                                          : std::string()));
      }
    }
    if (!status.ok()) return status;
    return values;
  }

 private:
  std::string Where() const { return absl::StrCat(address_.host, ":", address_.port); }

  absl::Status Connect() {
    if (c_ != nullptr) return absl::OkStatus();
    std::unique_ptr<redisContext, ContextFree> c(
        redisConnectWithTimeout(address_.host.c_str(), address_.port, timeout_));
    if (c == nullptr || c->err != 0) {
      return absl::UnavailableError(absl::StrCat(
          "redis ", Where(), ": cannot connect: ", c == nullptr ? "out of memory" : c->errstr));
    }
    if (redisSetTimeout(c.get(), timeout_) != REDIS_OK) {
      return absl::UnavailableError(absl::StrCat("redis ", Where(), ": cannot set a timeout"));
    }
    c_ = std::move(c);
    return absl::OkStatus();
  }

  // Drops the connection (its pipeline is in an unknown state) and says why.
  absl::Status Fail(absl::string_view what) {
    const std::string why = c_ != nullptr && c_->err != 0 ? c_->errstr : "no answer";
    c_.reset();
    return absl::UnavailableError(absl::StrCat("redis ", Where(), ": ", what, ": ", why));
  }

  const RedisAddress address_;
  const timeval timeout_;
  std::unique_ptr<redisContext, ContextFree> c_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisAddress address,
                                                                 absl::Duration timeout) {
  return std::unique_ptr<RedisClient>(new HiredisClient(std::move(address), timeout));
}
#else
absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisAddress, absl::Duration) {
  return absl::UnimplementedError(
      "this freshet was built without a Redis client (hiredis was not found when it was "
      "configured): serving replicas need it; rebuild with libhiredis-dev installed");
}
#endif

}  // namespace freshet::engine
