#include "stream/kafka/kafka_event_source.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "simdjson.h"
#include "stream/event_codec.h"
#include "stream/internal/line_parser.h"
#include "stream/kafka/rdkafka_util.h"

namespace freshet::stream {
namespace {

using internal::MalformedReason;

constexpr int kLogBurst = 10;
constexpr absl::Duration kLogPeriod = absl::Seconds(1);
constexpr int kDeadLetterFlushMs = 5000;
// Leaving the group on shutdown waits at most this long (a broker that is gone would otherwise
// hold the process for up to session.timeout.ms).
constexpr absl::Duration kCloseTimeout = absl::Seconds(5);
// How long a consumer that could not leave its group (no broker) gets to shut down.
constexpr absl::Duration kAbandonedDestroyTimeout = absl::Seconds(2);
// Static shares: how long one metadata request may take (the destructor waits for the one in
// flight), and the pause between failed attempts.
constexpr int kShareMetadataTimeoutMs = 5000;
constexpr absl::Duration kShareRetryPause = absl::Seconds(1);

absl::string_view Bytes(const void* data, size_t size) {
  return absl::string_view(static_cast<const char*>(data), data == nullptr ? 0 : size);
}

EventCodecOptions CodecOptions(const KafkaSourceOptions& options) {
  EventCodecOptions codec;
  codec.type_weights = options.type_weights;
  codec.default_weight = options.default_weight;
  codec.default_type = options.default_type;
  codec.limits = options.limits;
  codec.ts_unit = TimestampUnit::kMilliseconds;
  return codec;
}

}  // namespace

// The librdkafka handles and the decoder, kept out of the header.
struct KafkaEventSource::Clients {
  explicit Clients(const KafkaSourceOptions& options) : codec(CodecOptions(options)) {}

  rd_kafka_t* consumer = nullptr;
  rd_kafka_queue_t* queue = nullptr;  // the consumer queue (messages, rebalances, errors)
  rd_kafka_t* dead_letter = nullptr;  // producer; null without a dead-letter topic
  std::vector<rd_kafka_message_t*> batch;
  EventCodec codec;
  // Stream index by librdkafka topic handle (stable for the client's lifetime).
  absl::flat_hash_map<const rd_kafka_topic_t*, int32_t> streams;
};

// librdkafka's C callbacks; `opaque` is the source.
struct KafkaSourceCallbacks {
  static void Rebalance(rd_kafka_t*, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<KafkaEventSource*>(opaque)->OnRebalance(err, partitions);
  }
  static void Error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<KafkaEventSource*>(opaque)->OnError(err, reason);
  }
  static int Stats(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
    static_cast<KafkaEventSource*>(opaque)->OnStats(absl::string_view(json, json_len));
    return 0;  // librdkafka frees `json`
  }
  static void DeadLetter(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<KafkaEventSource*>(opaque)->OnDeadLetterDelivery(message->err);
  }
  static void OffsetCommit(rd_kafka_t*, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    static_cast<KafkaEventSource*>(opaque)->OnCommitted(err, offsets);
  }
};

absl::StatusOr<std::unique_ptr<KafkaEventSource>> KafkaEventSource::Create(
    KafkaSourceOptions options, PositionsFn positions) {
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("kafka source: no brokers (bootstrap.servers) given");
  }
  if (options.group_id.empty()) {
    return absl::InvalidArgumentError("kafka source: no consumer group id given");
  }
  if (options.topics.empty()) return absl::InvalidArgumentError("kafka source: no topics given");
  for (const std::string& topic : options.topics) {
    if (topic.empty()) return absl::InvalidArgumentError("kafka source: empty topic name");
  }
  if (options.share_count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kafka source: share_count must be at least 1 (the number of replicas), not ",
                     options.share_count));
  }
  if (options.share_index < 0 || options.share_index >= options.share_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("kafka source: share_index ", options.share_index, " is outside [0, ",
                     options.share_count, ") (the replica's rank among share_count replicas)"));
  }
  if (options.max_batch == 0) options.max_batch = 1;
  std::unique_ptr<KafkaEventSource> source(
      new KafkaEventSource(std::move(options), std::move(positions)));
  FRESHET_RETURN_IF_ERROR(source->Init());
  return source;
}

KafkaEventSource::KafkaEventSource(KafkaSourceOptions options, PositionsFn positions)
    : options_(std::move(options)),
      positions_(std::move(positions)),
      clients_(std::make_unique<Clients>(options_)),
      malformed_log_(kLogBurst, kLogPeriod),
      error_log_(kLogBurst, kLogPeriod) {}

absl::Status KafkaEventSource::Init() {
  rdkafka::ConfPtr conf = rdkafka::NewConf();
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "bootstrap.servers", options_.brokers));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "group.id", options_.group_id));
  FRESHET_RETURN_IF_ERROR(
      rdkafka::SetConf(conf.get(), "auto.offset.reset", options_.auto_offset_reset));
  // Positions come from the caller's store; group offsets are committed explicitly, for lag only.
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.auto.commit", "false"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.auto.offset.store", "false"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "enable.partition.eof", "false"));
  // Eager protocol: every rebalance revokes everything and assigns afresh, so each assignment
  // seeks every partition to the stored positions.
  FRESHET_RETURN_IF_ERROR(
      rdkafka::SetConf(conf.get(), "partition.assignment.strategy", "range,roundrobin"));
  // Throughput: a deep prefetch queue, so that fetching goes on while the caller learns and Poll()
  // finds whole batches waiting. The partitions' fetch queues are forwarded to the one consumer
  // queue, so these limits act on all partitions together: at librdkafka's default (100k
  // messages) fetching stalls whenever the caller is busy, which halves broker-to-learned
  // throughput (benchmarks/stream/kafka_bench.cc).
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "fetch.message.max.bytes", "4194304"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "queued.min.messages", "1000000"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "queued.max.messages.kbytes", "524288"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "fetch.wait.max.ms", "100"));
  // The client's statistics say, once a second, which brokers it is connected to
  // (BrokerUnreachableFor(), for readiness). 0 among the properties turns them off.
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), "statistics.interval.ms", "1000"));
  FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(conf.get(), options_.properties));
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &KafkaSourceCallbacks::Rebalance);
  rd_kafka_conf_set_error_cb(conf.get(), &KafkaSourceCallbacks::Error);
  rd_kafka_conf_set_stats_cb(conf.get(), &KafkaSourceCallbacks::Stats);
  rd_kafka_conf_set_offset_commit_cb(conf.get(), &KafkaSourceCallbacks::OffsetCommit);
  FRESHET_ASSIGN_OR_RETURN(clients_->consumer,
                           rdkafka::NewClient(RD_KAFKA_CONSUMER, std::move(conf)));
  // Errors and logs are served from the consumer queue too.
  rd_kafka_poll_set_consumer(clients_->consumer);
  clients_->queue = rd_kafka_queue_get_consumer(clients_->consumer);
  clients_->batch.resize(options_.max_batch);

  if (!options_.dead_letter_topic.empty()) {
    rdkafka::ConfPtr producer_conf = rdkafka::NewConf();
    FRESHET_RETURN_IF_ERROR(
        rdkafka::SetConf(producer_conf.get(), "bootstrap.servers", options_.brokers));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(producer_conf.get(), "enable.idempotence", "true"));
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(producer_conf.get(), "acks", "all"));
    // Consumer-only keys among the extra properties are ignored by a producer (with a warning).
    FRESHET_RETURN_IF_ERROR(rdkafka::SetConf(producer_conf.get(), options_.properties));
    rd_kafka_conf_set_opaque(producer_conf.get(), this);
    rd_kafka_conf_set_dr_msg_cb(producer_conf.get(), &KafkaSourceCallbacks::DeadLetter);
    FRESHET_ASSIGN_OR_RETURN(clients_->dead_letter,
                             rdkafka::NewClient(RD_KAFKA_PRODUCER, std::move(producer_conf)));
  }

  if (options_.share_count > 1) {
    // No subscription: the partitions are assigned by hand, so the group never rebalances them.
    share_pending_ = true;
    share_thread_ = std::thread([this] { FindShare(); });
    return absl::OkStatus();
  }
  rd_kafka_topic_partition_list_t* topics =
      rd_kafka_topic_partition_list_new(static_cast<int>(options_.topics.size()));
  for (const std::string& topic : options_.topics) {
    rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(clients_->consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return rdkafka::KafkaError(
        err, absl::StrCat("kafka source: subscribing to ", absl::StrJoin(options_.topics, ",")));
  }
  return absl::OkStatus();
}

KafkaEventSource::~KafkaEventSource() {
  if (share_thread_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      share_stop_ = true;
    }
    share_thread_.join();  // it uses the consumer
  }
  if (clients_->consumer != nullptr) {
    // Leaves the group: the revocation is served here, and the others rebalance without waiting
    // for a session timeout. A static share is no member: closing just drops its assignment.
    const bool left = LeaveGroup();
    if (clients_->queue != nullptr) rd_kafka_queue_destroy(clients_->queue);
    DestroyConsumer(clients_->consumer, left);
  }
  if (clients_->dead_letter != nullptr) {
    if (rd_kafka_flush(clients_->dead_letter, kDeadLetterFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      LogWarning(absl::StrCat(Name(), ": ", rd_kafka_outq_len(clients_->dead_letter),
                              " dead-letter messages were not delivered"));
    }
    rd_kafka_destroy(clients_->dead_letter);
  }
}

void KafkaEventSource::DestroyConsumer(void* consumer, bool left) {
  // librdkafka 2.0 to 2.3 can hang for ever destroying a group consumer after a broker outage
  // (confluentinc/librdkafka#4674). The destroy runs on a thread of its own; one that does not
  // finish in time is left to the process's exit rather than holding it.
  auto* rk = static_cast<rd_kafka_t*>(consumer);
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread destroyer([rk, left, done] {
    rd_kafka_destroy_flags(rk, left ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    done->store(true);
  });
  const absl::Time deadline = absl::Now() + (left ? kCloseTimeout : kAbandonedDestroyTimeout);
  while (!done->load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  if (done->load()) {
    destroyer.join();
    return;
  }
  destroyer.detach();
  LogWarning(absl::StrCat(Name(),
                          ": the Kafka client did not shut down in time (librdkafka "
                          "hangs destroying a group consumer after a broker outage); left to the "
                          "process exit"));
}

bool KafkaEventSource::LeaveGroup() {
  rd_kafka_t* rk = clients_->consumer;
  if (broker_down_.load(std::memory_order_relaxed)) {
    LogWarning(absl::StrCat(Name(),
                            ": no broker is reachable; not leaving the group (its "
                            "partitions move on at the session timeout)"));
    return false;
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_error_t* error = rd_kafka_consumer_close_queue(rk, queue);
  if (error != nullptr) {
    LogWarning(absl::StrCat(Name(), ": closing the consumer: ", rd_kafka_error_string(error)));
    rd_kafka_error_destroy(error);
    rd_kafka_queue_destroy(queue);
    return false;
  }
  // The close runs in the client's threads; its revocation comes back on `queue`.
  const absl::Time deadline = absl::Now() + kCloseTimeout;
  while (!rd_kafka_consumer_closed(rk) && absl::Now() < deadline) {
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 100);
    if (event == nullptr) continue;
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) {
      OnRebalance(rd_kafka_event_error(event), rd_kafka_event_topic_partition_list(event));
    }
    rd_kafka_event_destroy(event);
  }
  const bool closed = rd_kafka_consumer_closed(rk) != 0;
  if (!closed) {
    LogWarning(absl::StrCat(
        Name(), ": the group was not left within ", absl::FormatDuration(kCloseTimeout),
        " (broker unreachable?); its partitions move on at the session timeout"));
  }
  rd_kafka_queue_destroy(queue);
  return closed;
}

absl::Status KafkaEventSource::Resume(AppliedFn applied) {
  positions_ = std::move(applied);
  return SeekToApplied(positions_);  // nothing assigned before the first Poll(): nothing to do
}

void KafkaEventSource::Commit(absl::Span<const SourcePosition> durable) {
  // No broker: the commit would only wait in the client (and hold its shutdown); the next one
  // after the outage carries these positions too.
  if (broker_down_.load(std::memory_order_relaxed)) return;
  const absl::Status status = CommitOffsetsAsync(durable);
  if (!status.ok()) RetriedError(status.message());
}

void KafkaEventSource::OnCommitted(int err, const void* opaque_offsets) {
  const auto* offsets = static_cast<const rd_kafka_topic_partition_list_t*>(opaque_offsets);
  std::string failure;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;  // nothing to commit
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err));
  } else if (offsets != nullptr) {
    for (int i = 0; i < offsets->cnt && failure.empty(); ++i) {
      if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = absl::StrCat(offsets->elems[i].topic, "/", offsets->elems[i].partition, ": ",
                               rd_kafka_err2str(offsets->elems[i].err));
      }
    }
  }
  if (failure.empty()) return;
  commit_errors_.fetch_add(1, std::memory_order_relaxed);
  RetriedError(
      absl::StrCat(Name(), ": committing group offsets (for lag monitoring only): ", failure));
}

std::string KafkaEventSource::Name() const {
  std::string name =
      absl::StrCat("kafka:", absl::StrJoin(options_.topics, ","), "@", options_.group_id);
  if (options_.share_count > 1) {
    absl::StrAppend(&name, "[", options_.share_index, "/", options_.share_count, "]");
  }
  return name;
}

namespace {

int32_t StreamIndex(const std::vector<std::string>& topics, const char* topic) {
  for (size_t i = 0; i < topics.size(); ++i) {
    if (topics[i] == topic) return static_cast<int32_t>(i);
  }
  return -1;
}

}  // namespace

int64_t KafkaEventSource::StartOffset(int64_t applied) const {
  if (applied >= 0) return applied + 1;
  const std::string& reset = options_.auto_offset_reset;
  if (reset == "earliest" || reset == "smallest" || reset == "beginning") {
    return RD_KAFKA_OFFSET_BEGINNING;
  }
  if (reset == "latest" || reset == "largest" || reset == "end") return RD_KAFKA_OFFSET_END;
  return RD_KAFKA_OFFSET_INVALID;  // librdkafka applies auto.offset.reset
}

absl::Status KafkaEventSource::SeekToApplied(const AppliedFn& applied) {
  const std::vector<SourcePosition> assigned = AssignedPartitions();
  if (assigned.empty()) return absl::OkStatus();
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()));
  for (const SourcePosition& p : assigned) {
    if (p.stream < 0) continue;
    int64_t offset = StartOffset(applied(p.stream, p.partition));
    // A seek needs a definite position: without one, "error" and other policies start over.
    if (offset == RD_KAFKA_OFFSET_INVALID) offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(list, options_.topics[p.stream].c_str(), p.partition)
        ->offset = offset;
  }
  absl::Status status = absl::OkStatus();
  rd_kafka_error_t* error = rd_kafka_seek_partitions(clients_->consumer, list, 10000);
  if (error != nullptr) {
    status = absl::UnavailableError(
        absl::StrCat(Name(), ": seeking to the applied positions: ", rd_kafka_error_string(error)));
    rd_kafka_error_destroy(error);
  } else {
    for (int i = 0; i < list->cnt; ++i) {
      if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        status = rdkafka::KafkaError(list->elems[i].err,
                                     absl::StrCat(Name(), ": seeking ", list->elems[i].topic, "/",
                                                  list->elems[i].partition));
        break;
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return status;
}

absl::Status KafkaEventSource::AssignAtStoredPositions(void* opaque_partitions, bool incremental) {
  auto* partitions = static_cast<rd_kafka_topic_partition_list_t*>(opaque_partitions);
  rd_kafka_t* rk = clients_->consumer;
  std::vector<SourcePosition> added;
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& p = partitions->elems[i];
    const int32_t stream = StreamIndex(options_.topics, p.topic);
    p.offset =
        StartOffset(stream < 0 || positions_ == nullptr ? -1 : positions_(stream, p.partition));
    added.push_back(SourcePosition{.stream = stream, .partition = p.partition, .offset = -1});
  }
  if (incremental) {
    rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, partitions);
    if (error != nullptr) {
      const absl::Status status = rdkafka::KafkaError(
          rd_kafka_error_code(error), absl::StrCat(Name(), ": assigning partitions"));
      rd_kafka_error_destroy(error);
      return status;
    }
  } else {
    const rd_kafka_resp_err_t assign_err = rd_kafka_assign(rk, partitions);
    if (assign_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return rdkafka::KafkaError(assign_err, absl::StrCat(Name(), ": assigning partitions"));
    }
  }
  absl::MutexLock lock(&mu_);
  if (!incremental) assigned_.clear();
  assigned_.insert(assigned_.end(), added.begin(), added.end());
  LogInfo(absl::StrCat(Name(), ": assigned ", partitions->cnt, " partitions"));
  return absl::OkStatus();
}

void KafkaEventSource::OnRebalance(int err, void* opaque_partitions) {
  auto* partitions = static_cast<rd_kafka_topic_partition_list_t*>(opaque_partitions);
  rd_kafka_t* rk = clients_->consumer;
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    const absl::Status status = AssignAtStoredPositions(partitions, cooperative);
    if (!status.ok()) LogError(status.message());
    return;
  }
  // Revocation (or an assignment error): give the partitions up.
  if (cooperative) {
    rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, partitions);
    if (error != nullptr) rd_kafka_error_destroy(error);
  } else {
    const rd_kafka_resp_err_t unassign_err = rd_kafka_assign(rk, nullptr);
    if (unassign_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      LogWarning(absl::StrCat(Name(), ": unassigning: ", rd_kafka_err2str(unassign_err)));
    }
  }
  absl::MutexLock lock(&mu_);
  if (!cooperative) {
    assigned_.clear();
    return;
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    const int32_t stream = StreamIndex(options_.topics, partitions->elems[i].topic);
    const int32_t partition = partitions->elems[i].partition;
    std::erase_if(assigned_, [&](const SourcePosition& p) {
      return p.stream == stream && p.partition == partition;
    });
  }
}

void KafkaEventSource::OnError(int err, const char* reason) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal[512];
    const rd_kafka_resp_err_t original =
        rd_kafka_fatal_error(clients_->consumer, fatal, sizeof(fatal));
    absl::MutexLock lock(&mu_);
    fatal_message_ =
        absl::StrCat(Name(), ": fatal kafka error: ", rd_kafka_err2name(original), ": ", fatal);
    LogError(fatal_message_);
    fatal_.store(true, std::memory_order_release);
    return;
  }
  RetriedError(absl::StrCat(Name(), ": ", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)),
                            ": ", reason));
}

void KafkaEventSource::OnStats(absl::string_view json) {
  // {"brokers": {"<name>": {"nodeid": 1, "state": "UP", ...}, ...}, ...}: a broker in state UP
  // has a connection this client uses. Bootstrap entries (nodeid -1) count too.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return;
  simdjson::dom::object brokers;
  if (doc["brokers"].get_object().get(brokers) != simdjson::SUCCESS) return;
  bool up = false;
  for (const auto field : brokers) {
    std::string_view state;
    if (field.value["state"].get_string().get(state) == simdjson::SUCCESS && state == "UP") {
      up = true;
      break;
    }
  }
  const int64_t now = absl::GetCurrentTimeNanos();
  if (up) {
    broker_up_ns_.store(now, std::memory_order_relaxed);
    if (broker_down_.load(std::memory_order_relaxed)) {
      LogInfo(absl::StrCat(Name(), ": a broker of ", options_.brokers, " is connected again"));
    }
  } else if (!broker_down_.load(std::memory_order_relaxed)) {
    LogWarning(absl::StrCat(Name(), ": no broker of ", options_.brokers, " is connected"));
  }
  broker_down_.store(!up, std::memory_order_relaxed);
}

absl::Duration KafkaEventSource::BrokerUnreachableFor() const {
  if (!broker_down_.load(std::memory_order_relaxed)) return absl::ZeroDuration();
  return absl::Nanoseconds(absl::GetCurrentTimeNanos() -
                           broker_up_ns_.load(std::memory_order_relaxed));
}

void KafkaEventSource::RetriedError(absl::string_view message) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  int64_t suppressed = 0;
  if (error_log_.Allow(&suppressed)) {
    std::string line = absl::StrCat(message, " (retrying)");
    if (suppressed > 0) absl::StrAppend(&line, " (", suppressed, " similar messages suppressed)");
    LogWarning(line);
  }
}

absl::StatusOr<std::vector<SourcePosition>> KafkaEventSource::FetchShare() {
  std::vector<SourcePosition> share;
  for (size_t stream = 0; stream < options_.topics.size(); ++stream) {
    const std::string& topic = options_.topics[stream];
    // One topic per request: asking for all the cluster's topics could be a large answer.
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(clients_->consumer, topic.c_str(), nullptr);
    if (rkt == nullptr) {
      return rdkafka::KafkaError(rd_kafka_last_error(), absl::StrCat(Name(), ": topic ", topic));
    }
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(clients_->consumer, /*all_topics=*/0, rkt,
                                                      &metadata, kShareMetadataTimeoutMs);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return rdkafka::KafkaError(
          err, absl::StrCat(Name(), ": reading the metadata of topic ", topic, " (is a broker of ",
                            options_.brokers, " reachable?)"));
    }
    absl::Status status = absl::OkStatus();
    const rd_kafka_metadata_topic_t* found = nullptr;
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      if (topic == metadata->topics[i].topic) found = &metadata->topics[i];
    }
    if (found == nullptr || found->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        (found->err == RD_KAFKA_RESP_ERR_NO_ERROR && found->partition_cnt == 0)) {
      status = absl::NotFoundError(absl::StrCat(Name(), ": topic ", topic, " does not exist"));
    } else if (found->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status =
          rdkafka::KafkaError(found->err, absl::StrCat(Name(), ": the metadata of topic ", topic));
    } else {
      for (int i = 0; i < found->partition_cnt; ++i) {
        const int32_t partition = found->partitions[i].id;
        if (partition % options_.share_count != options_.share_index) continue;
        share.push_back(SourcePosition{
            .stream = static_cast<int32_t>(stream), .partition = partition, .offset = -1});
      }
    }
    rd_kafka_metadata_destroy(metadata);
    if (!status.ok()) return status;
  }
  std::sort(share.begin(), share.end(), [](const SourcePosition& a, const SourcePosition& b) {
    return std::pair(a.stream, a.partition) < std::pair(b.stream, b.partition);
  });
  return share;
}

void KafkaEventSource::FindShare() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (share_stop_) return;
    }
    absl::StatusOr<std::vector<SourcePosition>> share = FetchShare();
    if (share.ok()) {
      if (share->empty()) {
        LogWarning(absl::StrCat(Name(), ": no partition of ", absl::StrJoin(options_.topics, ","),
                                " falls to share ", options_.share_index, " of ",
                                options_.share_count,
                                " (more replicas than partitions): this replica consumes "
                                "nothing and never reports itself assigned"));
      }
      absl::MutexLock lock(&mu_);
      share_found_ = std::move(*share);
      return;
    }
    RetriedError(share.status().message());
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&share_stop_), kShareRetryPause)) return;
  }
}

void KafkaEventSource::AssignShare() {
  std::vector<SourcePosition> share;
  {
    absl::MutexLock lock(&mu_);
    if (!share_found_.has_value()) return;
    share = std::move(*share_found_);
    share_found_.reset();
  }
  // It has found the share and is returning (a retried assignment has joined it already).
  if (share_thread_.joinable()) share_thread_.join();
  share_pending_ = false;
  if (share.empty()) return;  // FindShare() said so
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(share.size()));
  for (const SourcePosition& p : share) {
    rd_kafka_topic_partition_list_add(list, options_.topics[p.stream].c_str(), p.partition);
  }
  const absl::Status status = AssignAtStoredPositions(list, /*incremental=*/false);
  rd_kafka_topic_partition_list_destroy(list);
  if (!status.ok()) {
    // Try again on the next Poll().
    RetriedError(status.message());
    share_pending_ = true;
    absl::MutexLock lock(&mu_);
    share_found_ = std::move(share);
  }
}

void KafkaEventSource::OnDeadLetterDelivery(int err) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  dlq_failures_.fetch_add(1, std::memory_order_relaxed);
  int64_t suppressed = 0;
  if (error_log_.Allow(&suppressed)) {
    LogWarning(absl::StrCat(
        Name(), ": a dead-letter message to ", options_.dead_letter_topic,
        " was not delivered: ", rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err))));
  }
}

absl::Status KafkaEventSource::Poll(size_t max_events, absl::Duration timeout,
                                    std::vector<Event>* out) {
  if (fatal_.load(std::memory_order_acquire)) {
    absl::MutexLock lock(&mu_);
    return absl::InternalError(fatal_message_);
  }
  if (share_pending_) AssignShare();
  if (clients_->dead_letter != nullptr) rd_kafka_poll(clients_->dead_letter, 0);
  const size_t limit = std::min(max_events, options_.max_batch);
  if (limit == 0) return absl::OkStatus();
  rd_kafka_message_t** batch = clients_->batch.data();
  // Take what has already arrived; only when nothing has, wait for the first message (a batch
  // call with a timeout would wait for the whole batch to fill).
  ssize_t n = rd_kafka_consume_batch_queue(clients_->queue, 0, batch, limit);
  if (n == 0 && timeout > absl::ZeroDuration()) {
    batch[0] = rd_kafka_consumer_poll(clients_->consumer, rdkafka::TimeoutMs(timeout));
    if (batch[0] != nullptr) {
      n = 1;
      if (limit > 1) {
        const ssize_t more = rd_kafka_consume_batch_queue(clients_->queue, 0, batch + 1, limit - 1);
        if (more > 0) n += more;
      }
    }
  }
  if (n < 0) {
    return rdkafka::KafkaError(rd_kafka_last_error(), absl::StrCat(Name(), ": consuming"));
  }
  out->reserve(out->size() + static_cast<size_t>(n));
  for (ssize_t i = 0; i < n; ++i) {
    HandleMessage(batch[i], out);
    rd_kafka_message_destroy(batch[i]);
  }
  if (fatal_.load(std::memory_order_acquire)) {
    absl::MutexLock lock(&mu_);
    return absl::InternalError(fatal_message_);
  }
  return absl::OkStatus();
}

void KafkaEventSource::HandleMessage(const void* opaque_message, std::vector<Event>* out) {
  const auto* m = static_cast<const rd_kafka_message_t*>(opaque_message);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    OnError(m->err, rd_kafka_message_errstr(m));
    return;
  }
  ++stats_.records_read;
  const absl::string_view value = Bytes(m->payload, m->len);
  if (value.empty()) {
    Malformed(m, "empty value");
    return;
  }
  // simdjson reads up to its padding past the end: decode from a padded copy.
  const size_t old_size = padded_.size();
  if (old_size < value.size() + internal::kLinePadding) {
    padded_.resize(value.size() + internal::kLinePadding);
  }
  std::memcpy(padded_.data(), value.data(), value.size());
  std::memset(padded_.data() + value.size(), 0, internal::kLinePadding);
  internal::ParsedLine parsed;
  std::optional<MalformedReason> bad =
      clients_->codec.Parse(absl::string_view(padded_.data(), value.size()), &parsed);
  ResolvedEvent resolved;
  if (!bad.has_value()) {
    // No user, or an empty one ("" and null count as absent): the key is the user.
    const absl::string_view key = Bytes(m->key, m->key_len);
    if (!key.empty() && (!parsed.has_user || parsed.user.empty())) {
      parsed.has_user = true;
      parsed.user = key;
    }
    // No ts: the message's timestamp (broker or create time), else now.
    int64_t default_ts_ms = 0;
    if (!parsed.has_ts) {
      rd_kafka_timestamp_type_t ts_type;
      default_ts_ms = rd_kafka_message_timestamp(m, &ts_type);
      if (default_ts_ms < 0) default_ts_ms = absl::ToUnixMillis(absl::Now());
    }
    bad = clients_->codec.Resolve(
        parsed, default_ts_ms, [this](absl::string_view type) { return TypeWeight(type); },
        &resolved);
  }
  if (bad.has_value()) {
    Malformed(m, std::string(internal::MalformedReasonName(*bad)));
    return;
  }

  auto stream_it = clients_->streams.find(m->rkt);
  if (stream_it == clients_->streams.end()) {
    stream_it =
        clients_->streams.emplace(m->rkt, StreamIndex(options_.topics, rd_kafka_topic_name(m->rkt)))
            .first;
  }
  Event& event = out->emplace_back();
  event.user.assign(resolved.user.data(), resolved.user.size());
  event.item.assign(resolved.item.data(), resolved.item.size());
  event.type.assign(resolved.type.data(), resolved.type.size());
  event.weight = resolved.weight;
  event.ts_ms = resolved.ts_ms;
  rd_kafka_timestamp_type_t received_type;
  const int64_t received = rd_kafka_message_timestamp(m, &received_type);
  event.received_ms = received > 0 ? received : absl::ToUnixMillis(absl::Now());
  event.id.assign(resolved.id.data(), resolved.id.size());
  event.position =
      SourcePosition{.stream = stream_it->second, .partition = m->partition, .offset = m->offset};
  ++stats_.events;
}

float KafkaEventSource::TypeWeight(absl::string_view type) {
  // Streams have few types: resolve each once (a hostile stream of ever new types is resolved
  // every time beyond the first 1024, rather than growing the cache without bound).
  const auto it = resolved_weights_.find(type);
  if (it != resolved_weights_.end()) return it->second;
  const float weight = clients_->codec.TypeWeight(type);
  if (!options_.type_weights.empty() && !type.empty() && !options_.type_weights.contains(type)) {
    LogWarning(absl::StrCat(Name(), ": event type \"", absl::CHexEscape(type),
                            "\" has no configured weight; using the default weight ", weight));
  }
  if (resolved_weights_.size() < 1024) resolved_weights_.emplace(type, weight);
  return weight;
}

void KafkaEventSource::Malformed(const void* opaque_message, const std::string& reason) {
  const auto* m = static_cast<const rd_kafka_message_t*>(opaque_message);
  ++stats_.malformed;
  ++malformed_[reason];
  const std::string origin =
      absl::StrCat(rd_kafka_topic_name(m->rkt), "/", m->partition, "@", m->offset);
  int64_t suppressed = 0;
  if (malformed_log_.Allow(&suppressed)) {
    std::string line = absl::StrCat("kafka ", origin, ": ", reason);
    if (suppressed > 0) absl::StrAppend(&line, " (", suppressed, " more malformed suppressed)");
    LogWarning(line);
  }
  if (clients_->dead_letter == nullptr) return;
  rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
  rd_kafka_header_add(headers, "freshet-reason", -1, reason.data(),
                      static_cast<ssize_t>(reason.size()));
  rd_kafka_header_add(headers, "freshet-origin", -1, origin.data(),
                      static_cast<ssize_t>(origin.size()));
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      clients_->dead_letter, RD_KAFKA_V_TOPIC(options_.dead_letter_topic.c_str()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(m->payload, m->len),
      RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(headers);  // ownership passes only on success
    OnDeadLetterDelivery(err);
  }
}

absl::flat_hash_map<std::string, int64_t> KafkaEventSource::malformed_by_reason() const {
  return malformed_;
}

std::vector<SourcePosition> KafkaEventSource::AssignedPartitions() const {
  absl::MutexLock lock(&mu_);
  return assigned_;
}

bool KafkaEventSource::Assigned() const {
  absl::MutexLock lock(&mu_);
  return !assigned_.empty();
}

std::vector<PartitionLag> KafkaEventSource::Lag() const {
  const std::vector<SourcePosition> assigned = AssignedPartitions();
  std::vector<PartitionLag> lags;
  if (assigned.empty()) return lags;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()));
  for (const SourcePosition& p : assigned) {
    if (p.stream < 0) continue;
    rd_kafka_topic_partition_list_add(list, options_.topics[p.stream].c_str(), p.partition);
  }
  // The application's position: the offset after the last message handed to Poll().
  if (rd_kafka_position(clients_->consumer, list) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
  }
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    PartitionLag lag;
    lag.topic = p.topic;
    lag.partition = p.partition;
    lag.next_offset = p.offset >= 0 ? p.offset : -1;
    int64_t low = -1;
    int64_t high = -1;
    if (rd_kafka_get_watermark_offsets(clients_->consumer, p.topic, p.partition, &low, &high) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0) {
      lag.high_watermark = high;
    }
    if (lag.next_offset >= 0 && lag.high_watermark >= 0) {
      lag.lag = std::max<int64_t>(0, lag.high_watermark - lag.next_offset);
    }
    lags.push_back(std::move(lag));
  }
  rd_kafka_topic_partition_list_destroy(list);
  return lags;
}

absl::Status KafkaEventSource::CommitOffsets(absl::Span<const SourcePosition> applied) {
  return CommitOffsetsImpl(applied, /*async=*/false);
}

absl::Status KafkaEventSource::CommitOffsetsAsync(absl::Span<const SourcePosition> applied) {
  return CommitOffsetsImpl(applied, /*async=*/true);
}

absl::Status KafkaEventSource::CommitOffsetsImpl(absl::Span<const SourcePosition> applied,
                                                 bool async) {
  if (applied.empty()) return absl::OkStatus();
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(applied.size()));
  for (const SourcePosition& p : applied) {
    if (p.stream < 0 || p.stream >= static_cast<int32_t>(options_.topics.size())) {
      rd_kafka_topic_partition_list_destroy(list);
      return absl::InvalidArgumentError(absl::StrCat(Name(), ": cannot commit stream ", p.stream,
                                                     ": the source has ", options_.topics.size(),
                                                     " topics"));
    }
    if (p.offset < 0) continue;
    rd_kafka_topic_partition_list_add(list, options_.topics[p.stream].c_str(), p.partition)
        ->offset = p.offset + 1;
  }
  absl::Status status = absl::OkStatus();
  if (list->cnt > 0) {
    const rd_kafka_resp_err_t err = rd_kafka_commit(clients_->consumer, list, async ? 1 : 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = rdkafka::KafkaError(err, absl::StrCat(Name(), ": committing offsets"));
      if (status.code() != absl::StatusCode::kInvalidArgument) {
        status = absl::UnavailableError(status.message());
      }
    } else {
      for (int i = 0; i < list->cnt; ++i) {
        if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          status = absl::UnavailableError(
              absl::StrCat(Name(), ": committing ", list->elems[i].topic, "/",
                           list->elems[i].partition, ": ", rd_kafka_err2str(list->elems[i].err)));
          break;
        }
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return status;
}

}  // namespace freshet::stream
