#include "engine/replicas/kafka_collective.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/byte_codec.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "stream/kafka/rdkafka_util.h"

namespace freshet::engine {
namespace {

namespace rdkafka = stream::rdkafka;

constexpr uint32_t kMagic = 0x46525831;  // "FRX1"
constexpr size_t kChunkBytes = 512 * 1024;
constexpr int kPartition = 0;

// A chunk's header, before its bytes.
struct ChunkHeader {
  int32_t rank = 0;
  int64_t started_ms = 0;  // when the sending rank's collective was created
  int64_t exchange = 0;
  int32_t chunk = 0;
  int32_t chunks = 1;
};

std::string EncodeChunk(const ChunkHeader& h, absl::string_view bytes) {
  std::string out;
  ByteWriter w(&out);
  w.Put(kMagic);
  w.Put(h.rank);
  w.Put(h.started_ms);
  w.Put(h.exchange);
  w.Put(h.chunk);
  w.Put(h.chunks);
  out.append(bytes.data(), bytes.size());
  return out;
}

// False for a message that is not a chunk of an exchange.
bool DecodeChunk(absl::string_view in, ChunkHeader* h, absl::string_view* bytes) {
  constexpr size_t kHeaderBytes = 4 + 4 + 8 + 8 + 4 + 4;
  if (in.size() < kHeaderBytes) return false;
  ByteReader r(in.substr(0, kHeaderBytes));
  uint32_t magic = 0;
  if (!r.Get(&magic) || magic != kMagic || !r.Get(&h->rank) || !r.Get(&h->started_ms) ||
      !r.Get(&h->exchange) || !r.Get(&h->chunk) || !r.Get(&h->chunks)) {
    return false;
  }
  *bytes = in.substr(kHeaderBytes);
  return h->chunks >= 1 && h->chunk >= 0 && h->chunk < h->chunks && h->exchange >= 0;
}

struct Clients {
  rd_kafka_t* producer = nullptr;
  rd_kafka_t* consumer = nullptr;
  ~Clients() {
    if (consumer != nullptr) {
      (void)rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
    if (producer != nullptr) {
      rd_kafka_flush(producer, 5000);
      rd_kafka_destroy(producer);
    }
  }
};

class KafkaCollective : public Collective {
 public:
  explicit KafkaCollective(KafkaCollectiveOptions options)
      : options_(std::move(options)), started_ms_(absl::ToUnixMillis(absl::Now())) {}

  absl::Status Init() {
    rdkafka::ConfPtr pconf = rdkafka::NewConf();
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), "bootstrap.servers", options_.brokers));
    // Idempotent: a retried chunk is neither lost nor written twice, and each rank's chunks stay
    // in order.
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), "enable.idempotence", "true"));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), "acks", "all"));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), "linger.ms", "0"));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), "message.timeout.ms",
                                             absl::StrCat(rdkafka::TimeoutMs(options_.timeout))));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(pconf.get(), options_.properties));
    rd_kafka_conf_set_opaque(pconf.get(), this);
    rd_kafka_conf_set_dr_msg_cb(
        pconf.get(), [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
          if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            static_cast<KafkaCollective*>(opaque)->failed_deliveries_.fetch_add(1);
          }
        });
    FRESHET_ASSIGN_OR_RETURN(clients_.producer,
                             rdkafka::NewClient(RD_KAFKA_PRODUCER, std::move(pconf)));

    rdkafka::ConfPtr cconf = rdkafka::NewConf();
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(cconf.get(), "bootstrap.servers", options_.brokers));
    // No group membership is used (the partition is assigned by hand) and nothing is committed.
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(
        cconf.get(), "group.id", absl::StrCat("freshet-replicas-", options_.topic, "-", rank())));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(cconf.get(), "enable.auto.commit", "false"));
    // Reading starts at the partition's beginning (assigned below); a fetch that finds its offset
    // gone means the broker dropped chunks this rank had not read yet: an error, not a skip.
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(cconf.get(), "auto.offset.reset", "error"));
    // An exchange waits on the others' latest chunks: fetch them as soon as they exist (a broker
    // that holds an empty fetch for its whole wait, like the development broker, would otherwise
    // add that wait to every exchange).
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(cconf.get(), "fetch.wait.max.ms", "5"));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(cconf.get(), options_.properties));
    FRESHET_ASSIGN_OR_RETURN(clients_.consumer,
                             rdkafka::NewClient(RD_KAFKA_CONSUMER, std::move(cconf)));
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, options_.topic.c_str(), kPartition)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    const rd_kafka_resp_err_t err = rd_kafka_assign(clients_.consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return rdkafka::KafkaError(err, absl::StrCat("replicas: reading topic ", options_.topic));
    }
    return absl::OkStatus();
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  std::string Name() const override {
    return absl::StrCat("kafka: ", options_.topic, "@", options_.brokers);
  }

 private:
  // What has arrived of one rank's message for one exchange.
  struct Partial {
    std::vector<std::string> chunks;
    std::vector<bool> got;
    int32_t received = 0;
    bool complete() const { return !got.empty() && received == static_cast<int32_t>(got.size()); }
  };

 protected:
  absl::StatusOr<std::vector<std::string>> Exchange(absl::string_view mine) override {
    const int64_t exchange = next_exchange_++;
    const absl::Time deadline = absl::Now() + options_.timeout;
    FRESHET_RETURN_IF_ERROR(Send(exchange, mine, deadline));
    std::vector<std::string> out(static_cast<size_t>(world_size()));
    std::vector<bool> have(static_cast<size_t>(world_size()), false);
    out[rank()] = std::string(mine);
    have[rank()] = true;
    int missing = world_size() - 1;
    const auto take_complete = [&] {
      for (int r = 0; r < world_size(); ++r) {
        if (!have[r] && TakeIfComplete(exchange, r, &out[r])) {
          have[r] = true;
          --missing;
        }
      }
    };
    take_complete();  // chunks of this exchange that arrived while waiting for an earlier one
    while (missing > 0) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        std::string who;
        for (int r = 0; r < world_size(); ++r) {
          if (!have[r]) {
            absl::StrAppend(&who, who.empty() ? "" : ", ", r);
          }
        }
        return absl::DeadlineExceededError(
            absl::StrCat("exchange ", exchange, ": nothing complete from rank(s) ", who, " within ",
                         absl::FormatDuration(options_.timeout), " on topic ", options_.topic));
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(
          clients_.consumer, std::min(100, std::max(1, rdkafka::TimeoutMs(left))));
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
        const std::string why = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        return absl::DataLossError(
            absl::StrCat("exchange ", exchange, ": the broker no longer holds messages of topic ",
                         options_.topic, " that this rank had not read (", why,
                         "); its retention is too small for the exchange traffic"));
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // Transport errors and a topic not created yet are retried by the client.
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          static RateLimiter logged(1, absl::Seconds(10));
          if (logged.Allow()) {
            LogWarning(absl::StrCat("replicas: topic ", options_.topic, ": ",
                                    rd_kafka_message_errstr(m), " (retrying)"));
          }
        }
        rd_kafka_message_destroy(m);
        continue;
      }
      Accept(absl::string_view(static_cast<const char*>(m->payload), m->len));
      rd_kafka_message_destroy(m);
      take_complete();
    }
    return out;
  }

 private:
  absl::Status Send(int64_t exchange, absl::string_view mine, absl::Time deadline) {
    const int32_t chunks =
        static_cast<int32_t>(std::max<size_t>(1, (mine.size() + kChunkBytes - 1) / kChunkBytes));
    const int64_t failed_before = failed_deliveries_.load();
    for (int32_t c = 0; c < chunks; ++c) {
      const ChunkHeader h{rank(), started_ms_, exchange, c, chunks};
      const std::string value =
          EncodeChunk(h, mine.substr(std::min(mine.size(), c * kChunkBytes), kChunkBytes));
      while (true) {
        const rd_kafka_resp_err_t err = rd_kafka_producev(
            clients_.producer, RD_KAFKA_V_TOPIC(options_.topic.c_str()),
            RD_KAFKA_V_PARTITION(kPartition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || absl::Now() >= deadline) {
          return rdkafka::KafkaError(err, absl::StrCat("replicas: writing to ", options_.topic));
        }
        rd_kafka_poll(clients_.producer, 10);
      }
    }
    // On the broker before the exchange goes on: a rank that then fails cannot have half-sent.
    const rd_kafka_resp_err_t flushed =
        rd_kafka_flush(clients_.producer, std::max(1, rdkafka::TimeoutMs(deadline - absl::Now())));
    if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return rdkafka::KafkaError(flushed, absl::StrCat("replicas: writing to ", options_.topic));
    }
    if (failed_deliveries_.load() != failed_before) {
      return absl::UnavailableError(absl::StrCat("replicas: the broker did not take exchange ",
                                                 exchange, " on topic ", options_.topic));
    }
    return absl::OkStatus();
  }

  void Accept(absl::string_view message) {
    ChunkHeader h;
    absl::string_view bytes;
    if (!DecodeChunk(message, &h, &bytes) || h.rank < 0 || h.rank >= world_size() ||
        h.rank == rank()) {
      return;  // not an exchange of this group's size, or our own
    }
    // A rank that started long before this one belongs to an earlier launch of the group.
    if (h.started_ms < started_ms_ - absl::ToInt64Milliseconds(options_.timeout)) return;
    RankState& from = ranks_[h.rank];
    if (h.started_ms > from.started_ms) {
      // A newer launch of that rank: whatever an older one sent is void.
      from = RankState{h.started_ms, -1, {}};
    } else if (h.started_ms < from.started_ms) {
      return;
    }
    if (h.exchange <= from.taken) return;  // already merged (or a repeat)
    Partial& p = from.partial[h.exchange];
    if (p.got.empty()) {
      p.chunks.resize(static_cast<size_t>(h.chunks));
      p.got.resize(static_cast<size_t>(h.chunks), false);
    }
    if (static_cast<int32_t>(p.got.size()) != h.chunks || p.got[h.chunk]) return;  // malformed
    p.chunks[h.chunk] = std::string(bytes);
    p.got[h.chunk] = true;
    ++p.received;
  }

  bool TakeIfComplete(int64_t exchange, int r, std::string* out) {
    RankState& from = ranks_[r];
    const auto it = from.partial.find(exchange);
    if (it == from.partial.end() || !it->second.complete()) return false;
    out->clear();
    for (const std::string& c : it->second.chunks) out->append(c);
    from.partial.erase(it);
    from.taken = exchange;
    return true;
  }

  // What this rank knows of another: the launch its messages come from, the latest exchange
  // taken from it, and the chunks of later ones.
  struct RankState {
    int64_t started_ms = 0;
    int64_t taken = -1;
    std::map<int64_t, Partial> partial;
  };

  const KafkaCollectiveOptions options_;
  const int64_t started_ms_;
  Clients clients_;
  std::atomic<int64_t> failed_deliveries_{0};
  int64_t next_exchange_ = 0;
  std::map<int, RankState> ranks_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> NewKafkaCollective(KafkaCollectiveOptions options) {
  if (options.brokers.empty()) return absl::InvalidArgumentError("replicas over Kafka: no brokers");
  if (options.topic.empty()) {
    return absl::InvalidArgumentError("replicas over Kafka: no exchange topic");
  }
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("replicas over Kafka: rank ", options.rank,
                                                   " of a world of ", options.world_size));
  }
  auto collective = std::make_unique<KafkaCollective>(std::move(options));
  FRESHET_RETURN_IF_ERROR(collective->Init());
  return std::unique_ptr<Collective>(std::move(collective));
}

}  // namespace freshet::engine
