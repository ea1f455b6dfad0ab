// SyntheticStream: a seeded, in-memory clickstream with planted structure, for `freshet generate`,
// learner tests and benchmarks.
//
// The planted structure, which a good online recommender can learn and a popularity baseline
// cannot:
//   - Topics (the planted rank). Items are split into `topics` equal-sized groups. Item
//     popularity follows a power law inside each topic, and topics themselves are power-law
//     popular, both with exponent `popularity_exponent`.
//   - Long-term taste. Each user prefers `user_topics` topics with random (Dirichlet(1)) weights.
//     With probability `topic_concentration` an event's item comes from one of those topics
//     (picked by weight), otherwise from the whole catalog (topic by popularity); in both cases
//     the item inside the chosen topic is drawn by its power-law popularity.
//   - Taste drift. Before each of a user's events, with probability `drift_rate`, one of the
//     user's preferred topics (chosen uniformly) is replaced by a fresh topic drawn by topic
//     popularity, keeping its weight: preferences random-walk over the user's events.
//   - Short-term sequences. Every item has 1..`max_successors` planted successors in its own
//     topic. With probability `sequential_probability` a user's next item is a uniformly chosen
//     successor of their previous item (not on a user's first event).
//   - Activity. Users pick events with a power law (exponent `user_activity_exponent`), so a few
//     users are very active; user and item ids are shuffled so that id order says nothing about
//     activity, popularity or topic.
//   - Event types are drawn independently per event from `event_types`; timestamps advance by
//     exponential gaps with mean 1000 / `events_per_second` ms, floored to whole milliseconds, so
//     they never decrease and some are equal.
//
// Ids are "u<N>" for user N in [0, users) and "i<N>" for item N in [0, items).
// Generating an event costs O(1) (alias tables; O(user_topics + max_successors) small scans) and
// memory is O(users + items + topics).
#ifndef FRESHET_STREAM_SYNTHETIC_SYNTHETIC_STREAM_H_
#define FRESHET_STREAM_SYNTHETIC_SYNTHETIC_STREAM_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/random.h"
#include "stream/event.h"
#include "stream/synthetic/internal/alias_table.h"

namespace freshet::stream {

// One event type of the synthetic mix, e.g. {"click", 0.20, 2}.
struct SyntheticEventType {
  std::string name;        // non-empty; letters, digits, '_', '-' and '.' only
  double probability = 0;  // in [0, 1]; the probabilities of all types sum to 1
  float weight = 1;        // the Event::weight given to events of this type; finite, >= 0
};

// The default mix: view 0.70 weight 1, click 0.20 weight 2, cart 0.07 weight 4, purchase 0.03
// weight 8.
std::vector<SyntheticEventType> DefaultSyntheticEventTypes();

// Knobs of the generator; see the file comment for what each one plants. The defaults give a
// stream on which a model that learns topics and the last item clearly beats popularity.
struct SyntheticStreamOptions {
  int64_t events = 1'000'000;  // how many events the stream holds (>= 0)
  int32_t users = 10'000;      // >= 1
  int32_t items = 10'000;      // >= topics
  uint64_t seed = 1;

  int32_t topics = 32;                  // planted rank, >= 1
  double popularity_exponent = 1.0;     // Zipf exponent of item and topic popularity, >= 0
  double user_activity_exponent = 0.7;  // Zipf exponent of user activity, >= 0
  int32_t user_topics = 3;              // preferred topics per user, in [1, min(topics, 8)]
  double topic_concentration = 0.9;     // P(item from a preferred topic), in [0, 1]
  double drift_rate = 0.002;            // P(one preferred topic changes) per event, in [0, 1]
  double sequential_probability = 0.3;  // P(next item is a successor of the last), in [0, 1]
  int32_t max_successors = 3;           // successors per item: uniform in [1, max], max in [1, 16]

  std::vector<SyntheticEventType> event_types = DefaultSyntheticEventTypes();

  int64_t start_ts_ms = 1'700'000'000'000;  // timestamp of time zero, epoch ms, >= 0
  double events_per_second = 100;           // mean rate in simulated time, > 0
};

// OK, or InvalidArgument naming the first offending field and why.
absl::Status ValidateSyntheticStreamOptions(const SyntheticStreamOptions& options);

// An event with dense ids, for benchmarks and tests that do not want strings.
struct SyntheticEventIds {
  int32_t user = 0;  // in [0, users)
  int32_t item = 0;  // in [0, items)
  int32_t type = 0;  // index into options.event_types
  int64_t ts_ms = 0;
};

// Generates the stream described by its options, one event at a time, deterministically for a
// seed (on a given build: the schedule uses floating-point pow/log).
//
// Not thread-safe: Next*() mutates the generator; use one SyntheticStream per thread. The const
// accessors may be called concurrently with each other.
class SyntheticStream {
 public:
  // Builds the planted structure (topics, popularity, successors, user tastes). InvalidArgument
  // if the options are invalid (see ValidateSyntheticStreamOptions). Costs O(users + items).
  static absl::StatusOr<SyntheticStream> Create(const SyntheticStreamOptions& options);

  SyntheticStream(SyntheticStream&&) = default;
  SyntheticStream& operator=(SyntheticStream&&) = default;

  // Writes the next event into `*out`, reusing its strings' storage. `position` is {0, 0, i} for
  // the i-th event (0-based). The stream is unbounded: `options().events` is only what Done()
  // and WriteSyntheticStream go by.
  void Next(Event* out);

  // The same sequence as Next() without building strings; the two may be interleaved and share
  // one sequence.
  void NextIds(SyntheticEventIds* out);

  // Number of events generated so far, and whether that has reached options().events.
  int64_t emitted() const { return emitted_; }
  bool Done() const { return emitted_ >= options_.events; }

  const SyntheticStreamOptions& options() const { return options_; }

  // Planted structure, for tests and evaluation scripts. `item` must be in [0, items), `topic`
  // in [0, topics) (checked with FRESHET_CHECK).
  int32_t TopicOfItem(int32_t item) const;
  // The item's planted successors: 1..max_successors distinct items of its own topic (the item
  // itself only when its topic has a single item).
  absl::Span<const int32_t> SuccessorsOf(int32_t item) const;
  // The items of a topic, most popular first.
  absl::Span<const int32_t> ItemsOfTopic(int32_t topic) const;
  // The user's current preferred topics (user_topics of them, distinct); they change with
  // drift as events are generated.
  absl::Span<const int32_t> PreferredTopicsOf(int32_t user) const;

  // The distribution the user's next item is drawn from, given their current state and
  // `previous_item` (their latest item, -1 before their first event): out[i] = P(item i), over
  // all items (out.size() must be options().items; the values sum to 1). Drift is not in it:
  // called right after NextIds() with that event's user and their item before it, it is the
  // exact distribution that event's item was drawn from (any drift at that event already
  // applied). Ranking by it is the best any model can do on this stream (synthetic_ceiling.h).
  // Costs O(items).
  void NextItemDistribution(int32_t user, int32_t previous_item, absl::Span<double> out) const;

  // The external ids used in events: "u<N>" and "i<N>".
  static std::string UserId(int32_t user);
  static std::string ItemId(int32_t item);

 private:
  explicit SyntheticStream(const SyntheticStreamOptions& options);
  void Build();
  int32_t DrawPreferredTopic(const int32_t* state);
  // Puts a topic drawn by popularity, and held by none of the user's slots, into `slot`; keeps
  // the slot's weight. No-op when the user already holds every topic.
  void ReplaceTopic(int32_t user, int32_t slot);

  SyntheticStreamOptions options_;
  Rng rng_;
  int64_t emitted_ = 0;
  int32_t next_user_ = 0;  // the user of the next event, drawn ahead (see NextIds)
  double clock_ms_ = 0;    // simulated time since start_ts_ms, before flooring

  // Items grouped by topic, most popular first within a topic: topic t owns
  // topic_items_[topic_begin_[t] .. topic_begin_[t + 1]).
  std::vector<int32_t> topic_items_;
  std::vector<int32_t> topic_begin_;
  std::vector<int32_t> item_topic_;
  // Per-topic item popularity, over the topic's slice of topic_items_.
  std::vector<synthetic_internal::AliasTable> item_in_topic_;
  synthetic_internal::AliasTable topic_popularity_;
  // The same laws as probabilities: P(item | its topic), and P(topic) for a draw from the whole
  // catalog (NextItemDistribution).
  std::vector<double> item_share_;
  std::vector<double> topic_share_;
  synthetic_internal::AliasTable user_activity_;  // returns a user id
  synthetic_internal::AliasTable event_type_;

  // successors_[successor_begin_[i] .. successor_begin_[i + 1]) are item i's successors.
  std::vector<int32_t> successor_begin_;
  std::vector<int32_t> successors_;

  // One record of user_stride_ = 1 + 2 * user_topics int32s per user, kept together so an event
  // touches one or two cache lines of user state: [0] the last item (-1 before the first event),
  // [1, 1 + k) the preferred topics, [1 + k, 1 + 2k) their cumulative weights out of 2^31 (the
  // last one unused: the last topic takes whatever is left).
  int32_t* UserState(int32_t user) {
    return user_state_.data() + static_cast<size_t>(user) * user_stride_;
  }
  int32_t user_stride_ = 0;
  std::vector<int32_t> user_state_;
};

// Writes `options.events` events of SyntheticStream(options) to `path` as JSON lines, each as
// EventCodec::Encode writes it (stream/event_codec.h, ARCHITECTURE.md "Event format"):
//   {"user":"u42","item":"i9","type":"click","ts":1700000000123,"weight":2}
// gzip-compressed when `path` ends in ".gz". Creates or truncates the file; `progress`, if set,
// is called on the calling thread with the number of events written after every 100,000 events
// and, once the file is complete, with options.events.
// Returns InvalidArgument for bad options; NotFound (missing directory), PermissionDenied,
// ResourceExhausted (disk full) or Unavailable (other I/O errors), each naming the path, when the
// file cannot be written; a partly written file is then removed.
absl::Status WriteSyntheticStream(const SyntheticStreamOptions& options, const std::string& path,
                                  const std::function<void(int64_t written)>& progress = {});

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_SYNTHETIC_SYNTHETIC_STREAM_H_
