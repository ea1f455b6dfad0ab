#include "engine/follower/redis_client.h"

#include <cerrno>
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
#include "absl/strings/strip.h"
#include "common/status_macros.h"

#ifdef FRESHET_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#include <poll.h>
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

std::optional<absl::string_view> UserOfStateKey(absl::string_view prefix, absl::string_view key) {
  if (!absl::ConsumePrefix(&key, prefix) || !absl::ConsumePrefix(&key, "{") ||
      !absl::ConsumeSuffix(&key, "}") || key.empty()) {
    return std::nullopt;
  }
  return key;
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
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

// A blocking connection whose reads and writes time out after `timeout`.
absl::StatusOr<ContextPtr> ConnectTo(const RedisAddress& address, const timeval& timeout) {
  ContextPtr c(redisConnectWithTimeout(address.host.c_str(), address.port, timeout));
  const std::string where = absl::StrCat(address.host, ":", address.port);
  if (c == nullptr || c->err != 0) {
    return absl::UnavailableError(absl::StrCat(
        "redis ", where, ": cannot connect: ", c == nullptr ? "out of memory" : c->errstr));
  }
  if (redisSetTimeout(c.get(), timeout) != REDIS_OK) {
    return absl::UnavailableError(absl::StrCat("redis ", where, ": cannot set a timeout"));
  }
  return c;
}

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

  absl::StatusOr<std::vector<std::optional<std::string>>> GetManyTracked(
      const std::vector<std::string>& keys, int64_t redirect, bool* tracked) override {
    if (tracked != nullptr) *tracked = false;
    std::vector<std::optional<std::string>> values(keys.size());
    if (keys.empty()) return values;
    if (absl::Status s = Connect(); !s.ok()) return s;
    // Tracking is a property of the connection: asked for once per connection and redirect, in
    // the same round trip as the reads.
    const bool ask_tracking = redirect > 0 && tracking_to_ != redirect;
    if (ask_tracking) {
      const std::string id = std::to_string(redirect);
      if (redisAppendCommand(c_.get(), "CLIENT TRACKING on REDIRECT %s", id.c_str()) != REDIS_OK) {
        return Fail("queueing CLIENT TRACKING");
      }
    }
    for (const std::string& key : keys) {
      if (redisAppendCommand(c_.get(), "GET %b", key.data(), key.size()) != REDIS_OK) {
        return Fail("queueing GET");
      }
    }
    if (ask_tracking) {
      void* raw = nullptr;
      if (redisGetReply(c_.get(), &raw) != REDIS_OK) return Fail("CLIENT TRACKING");
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_STATUS) {
        tracking_to_ = redirect;
        tracking_error_.clear();
      } else {
        tracking_to_ = 0;
        tracking_error_ = reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                                                           : "an unexpected answer";
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
    if (tracked != nullptr) *tracked = redirect > 0 && tracking_to_ == redirect;
    return values;
  }

  std::string tracking_error() const override { return tracking_error_; }

 private:
  std::string Where() const { return absl::StrCat(address_.host, ":", address_.port); }

  absl::Status Connect() {
    if (c_ != nullptr) return absl::OkStatus();
    absl::StatusOr<ContextPtr> c = ConnectTo(address_, timeout_);
    if (!c.ok()) return c.status();
    c_ = *std::move(c);
    return absl::OkStatus();
  }

  // Drops the connection (its pipeline is in an unknown state; what it tracked is forgotten)
  // and says why.
  absl::Status Fail(absl::string_view what) {
    const std::string why = c_ != nullptr && c_->err != 0 ? c_->errstr : "no answer";
    c_.reset();
    tracking_to_ = 0;
    return absl::UnavailableError(absl::StrCat("redis ", Where(), ": ", what, ": ", why));
  }

  const RedisAddress address_;
  const timeval timeout_;
  ContextPtr c_;
  int64_t tracking_to_ = 0;  // the connection's reads are tracked for this redirect (0: none)
  std::string tracking_error_;
};

class HiredisInvalidations final : public RedisInvalidations {
 public:
  HiredisInvalidations(RedisAddress address, absl::Duration timeout)
      : address_(std::move(address)), timeout_(absl::ToTimeval(timeout)) {}

  absl::StatusOr<int64_t> Connect() override {
    c_.reset();
    FRESHET_ASSIGN_OR_RETURN(ContextPtr c, ConnectTo(address_, timeout_));
    ReplyPtr id(static_cast<redisReply*>(redisCommand(c.get(), "CLIENT ID")));
    if (id == nullptr || id->type != REDIS_REPLY_INTEGER || id->integer <= 0) {
      return absl::UnavailableError(absl::StrCat("redis ", Where(), ": CLIENT ID refused"));
    }
    ReplyPtr subscribed(
        static_cast<redisReply*>(redisCommand(c.get(), "SUBSCRIBE __redis__:invalidate")));
    if (subscribed == nullptr || subscribed->type != REDIS_REPLY_ARRAY) {
      return absl::UnavailableError(
          absl::StrCat("redis ", Where(), ": SUBSCRIBE __redis__:invalidate refused"));
    }
    c_ = std::move(c);
    return id->integer;
  }

  absl::Status Poll(absl::Duration wait, std::vector<std::string>* keys, bool* all) override {
    if (c_ == nullptr) return absl::UnavailableError("redis invalidations: not connected");
    // What an earlier read left in the buffer first, then at most one wait for the socket.
    bool waited = false;
    while (true) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(c_.get(), &raw) != REDIS_OK) return Fail("reading");
      if (raw != nullptr) {
        ReplyPtr reply(static_cast<redisReply*>(raw));
        Take(*reply, keys, all);
        continue;
      }
      if (waited) return absl::OkStatus();
      pollfd p{c_->fd, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
      waited = true;
      if (ready == 0 || (ready < 0 && errno == EINTR)) return absl::OkStatus();
      if (ready < 0) return Fail("poll");
      if (redisBufferRead(c_.get()) != REDIS_OK) return Fail("reading");
    }
  }

  absl::Status Barrier() override {
    if (c_ == nullptr) return absl::UnavailableError("redis invalidations: not connected");
    if (redisAppendCommand(c_.get(), "PING") != REDIS_OK) return Fail("queueing PING");
    int done = 0;
    while (done == 0) {
      if (redisBufferWrite(c_.get(), &done) != REDIS_OK) return Fail("sending PING");
    }
    return absl::OkStatus();
  }

  int64_t barriers() const override { return barriers_; }

 private:
  std::string Where() const { return absl::StrCat(address_.host, ":", address_.port); }

  // A pushed message: ["message", "__redis__:invalidate", [keys...] or nil]; a PING's answer:
  // ["pong", ""].
  void Take(const redisReply& reply, std::vector<std::string>* keys, bool* all) {
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 2) return;
    const redisReply& kind = *reply.element[0];
    if (kind.type != REDIS_REPLY_STRING) return;
    const absl::string_view what(kind.str, kind.len);
    if (what == "pong") {
      ++barriers_;
      return;
    }
    if (what != "message" || reply.elements != 3) return;
    const redisReply& payload = *reply.element[2];
    if (payload.type == REDIS_REPLY_NIL) {
      *all = true;
    } else if (payload.type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < payload.elements; ++i) {
        const redisReply& key = *payload.element[i];
        if (key.type == REDIS_REPLY_STRING) keys->emplace_back(key.str, key.len);
      }
    } else if (payload.type == REDIS_REPLY_STRING) {
      keys->emplace_back(payload.str, payload.len);
    }
  }

  absl::Status Fail(absl::string_view what) {
    const std::string why = c_ != nullptr && c_->err != 0 ? c_->errstr : "connection closed";
    c_.reset();
    return absl::UnavailableError(
        absl::StrCat("redis ", Where(), ": invalidations: ", what, ": ", why));
  }

  const RedisAddress address_;
  const timeval timeout_;
  ContextPtr c_;
  int64_t barriers_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisAddress address,
                                                                 absl::Duration timeout) {
  return std::unique_ptr<RedisClient>(new HiredisClient(std::move(address), timeout));
}

absl::StatusOr<std::unique_ptr<RedisInvalidations>> RedisInvalidations::Create(
    RedisAddress address, absl::Duration timeout) {
  return std::unique_ptr<RedisInvalidations>(new HiredisInvalidations(std::move(address), timeout));
}
#else
absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisAddress, absl::Duration) {
  return absl::UnimplementedError(
      "this freshet was built without a Redis client (hiredis was not found when it was "
      "configured): serving replicas need it; rebuild with libhiredis-dev installed");
}

absl::StatusOr<std::unique_ptr<RedisInvalidations>> RedisInvalidations::Create(RedisAddress,
                                                                               absl::Duration) {
  return absl::UnimplementedError("this freshet was built without a Redis client (hiredis)");
}
#endif

}  // namespace freshet::engine
