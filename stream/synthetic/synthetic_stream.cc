#include "stream/synthetic/synthetic_stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "stream/event_codec.h"

namespace freshet::stream {
namespace {

// Bounds that keep per-user state and per-event scans small (O(1) per event in practice).
constexpr int32_t kMaxUserTopics = 8;
constexpr int32_t kMaxSuccessors = 16;
constexpr size_t kMaxTypeNameLength = 64;
constexpr int64_t kProgressEvery = 100'000;
// Per-user topic CDFs are fixed-point out of 2^31 so a user's whole state is one int32 record.
constexpr double kCdfOne = 2147483648.0;

bool ValidProbability(double p) { return p >= 0.0 && p <= 1.0; }  // false for NaN

bool ValidTypeName(const std::string& name) {
  if (name.empty() || name.size() > kMaxTypeNameLength) return false;
  // A plain alphabet: names that need no JSON escapes and no quoting on a command line.
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// Zipf weights 1 / (rank + 1)^exponent for ranks 0..n-1.
std::vector<double> PowerLawWeights(int64_t n, double exponent) {
  std::vector<double> w(n);
  for (int64_t r = 0; r < n; ++r) w[r] = std::pow(static_cast<double>(r + 1), -exponent);
  return w;
}

std::vector<int32_t> Shuffled(int32_t n, Rng& rng) {
  std::vector<int32_t> v(n);
  for (int32_t i = 0; i < n; ++i) v[i] = i;
  for (int32_t i = n - 1; i > 0; --i) std::swap(v[i], v[rng.Below(static_cast<uint32_t>(i + 1))]);
  return v;
}

// Writes n in decimal at `p` and returns the end; the caller guarantees room for 20 characters.
char* PutInt(char* p, int64_t n) { return std::to_chars(p, p + 20, n).ptr; }

}  // namespace

std::vector<SyntheticEventType> DefaultSyntheticEventTypes() {
  return {
      {"view", 0.70, 1.0f}, {"click", 0.20, 2.0f}, {"cart", 0.07, 4.0f}, {"purchase", 0.03, 8.0f}};
}

absl::Status ValidateSyntheticStreamOptions(const SyntheticStreamOptions& o) {
  auto bad = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("synthetic stream: ", parts...));
  };
  if (o.events < 0) return bad("events must be >= 0, got ", o.events);
  if (o.users < 1) return bad("users must be >= 1, got ", o.users);
  if (o.topics < 1) return bad("topics must be >= 1, got ", o.topics);
  if (o.items < o.topics) {
    return bad("items must be >= topics (every topic needs an item), got items=", o.items,
               " topics=", o.topics);
  }
  if (!(o.popularity_exponent >= 0 && std::isfinite(o.popularity_exponent))) {
    return bad("popularity_exponent must be finite and >= 0, got ", o.popularity_exponent);
  }
  if (!(o.user_activity_exponent >= 0 && std::isfinite(o.user_activity_exponent))) {
    return bad("user_activity_exponent must be finite and >= 0, got ", o.user_activity_exponent);
  }
  const int32_t max_user_topics = std::min(o.topics, kMaxUserTopics);
  if (o.user_topics < 1 || o.user_topics > max_user_topics) {
    return bad("user_topics must be in [1, ", max_user_topics, "] (min(topics, ", kMaxUserTopics,
               ")), got ", o.user_topics);
  }
  if (!ValidProbability(o.topic_concentration)) {
    return bad("topic_concentration must be in [0, 1], got ", o.topic_concentration);
  }
  if (!ValidProbability(o.drift_rate)) {
    return bad("drift_rate must be in [0, 1], got ", o.drift_rate);
  }
  if (!ValidProbability(o.sequential_probability)) {
    return bad("sequential_probability must be in [0, 1], got ", o.sequential_probability);
  }
  if (o.max_successors < 1 || o.max_successors > kMaxSuccessors) {
    return bad("max_successors must be in [1, ", kMaxSuccessors, "], got ", o.max_successors);
  }
  if (static_cast<int64_t>(o.items) * o.max_successors > std::numeric_limits<int32_t>::max()) {
    // Successor lists are indexed with int32.
    return bad("items * max_successors must fit in int32, got items=", o.items,
               " max_successors=", o.max_successors);
  }
  if (o.event_types.empty()) return bad("event_types must not be empty");
  double total = 0;
  absl::flat_hash_set<std::string> names;
  for (const SyntheticEventType& t : o.event_types) {
    if (!ValidTypeName(t.name)) {
      return bad("event type name \"", t.name, "\" must be 1..", kMaxTypeNameLength,
                 " characters of [A-Za-z0-9_.-]");
    }
    if (!names.insert(t.name).second) return bad("event type \"", t.name, "\" is listed twice");
    if (!ValidProbability(t.probability)) {
      return bad("event type \"", t.name, "\" probability must be in [0, 1], got ", t.probability);
    }
    if (!(t.weight >= 0 && std::isfinite(t.weight))) {
      return bad("event type \"", t.name, "\" weight must be finite and >= 0, got ", t.weight);
    }
    total += t.probability;
  }
  if (std::abs(total - 1.0) > 1e-6) {
    return bad("event type probabilities must sum to 1, got ", total);
  }
  if (o.start_ts_ms < 0) return bad("start_ts_ms must be >= 0, got ", o.start_ts_ms);
  if (!(o.events_per_second > 0 && std::isfinite(o.events_per_second))) {
    return bad("events_per_second must be finite and > 0, got ", o.events_per_second);
  }
  return absl::OkStatus();
}

absl::StatusOr<SyntheticStream> SyntheticStream::Create(const SyntheticStreamOptions& options) {
  FRESHET_RETURN_IF_ERROR(ValidateSyntheticStreamOptions(options));
  SyntheticStream stream(options);
  stream.Build();
  return stream;
}

SyntheticStream::SyntheticStream(const SyntheticStreamOptions& options)
    : options_(options), rng_(options.seed) {}

void SyntheticStream::Build() {
  const int32_t items = options_.items;
  const int32_t topics = options_.topics;
  const int32_t users = options_.users;
  const int32_t k = options_.user_topics;

  // Topics: a shuffled catalog cut into `topics` near-equal slices; position inside the slice is
  // the item's popularity rank in its topic.
  topic_items_ = Shuffled(items, rng_);
  topic_begin_.resize(topics + 1);
  for (int32_t t = 0; t <= topics; ++t) {
    topic_begin_[t] = static_cast<int32_t>(static_cast<int64_t>(items) * t / topics);
  }
  item_topic_.resize(items);
  item_in_topic_.resize(topics);
  item_share_.resize(items);
  for (int32_t t = 0; t < topics; ++t) {
    const int32_t begin = topic_begin_[t];
    const int32_t end = topic_begin_[t + 1];
    for (int32_t j = begin; j < end; ++j) item_topic_[topic_items_[j]] = t;
    const std::vector<double> weights = PowerLawWeights(end - begin, options_.popularity_exponent);
    item_in_topic_[t].Build(weights);
    const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
    for (int32_t j = begin; j < end; ++j) item_share_[topic_items_[j]] = weights[j - begin] / sum;
  }
  topic_share_ = PowerLawWeights(topics, options_.popularity_exponent);
  topic_popularity_.Build(topic_share_);
  const double topic_sum = std::accumulate(topic_share_.begin(), topic_share_.end(), 0.0);
  for (double& share : topic_share_) share /= topic_sum;

  // Successors: uniform within the topic rather than by popularity, so that the sequential
  // signal is something a popularity model cannot pick up.
  successor_begin_.resize(static_cast<size_t>(items) + 1);
  successors_.clear();
  successors_.reserve(static_cast<size_t>(items) * (options_.max_successors + 1) / 2 + 1);
  for (int32_t i = 0; i < items; ++i) {
    successor_begin_[i] = static_cast<int32_t>(successors_.size());
    const int32_t t = item_topic_[i];
    const int32_t begin = topic_begin_[t];
    const int32_t size = topic_begin_[t + 1] - begin;
    if (size == 1) {
      successors_.push_back(i);
      continue;
    }
    const int32_t want = std::min<int32_t>(
        1 + static_cast<int32_t>(rng_.Below(static_cast<uint32_t>(options_.max_successors))),
        size - 1);
    const size_t first = successors_.size();
    if (want == size - 1) {
      for (int32_t j = begin; j < begin + size; ++j) {
        if (topic_items_[j] != i) successors_.push_back(topic_items_[j]);
      }
      continue;
    }
    // want < size - 1 <= topic size, so rejection ends quickly (at least one free candidate
    // besides self for every draw still needed).
    while (static_cast<int32_t>(successors_.size() - first) < want) {
      const int32_t cand = topic_items_[begin + rng_.Below(static_cast<uint32_t>(size))];
      if (cand == i) continue;
      if (std::find(successors_.begin() + first, successors_.end(), cand) != successors_.end()) {
        continue;
      }
      successors_.push_back(cand);
    }
  }
  successor_begin_[items] = static_cast<int32_t>(successors_.size());

  // User activity: Zipf over a shuffled user order.
  {
    const std::vector<int32_t> order = Shuffled(users, rng_);
    const std::vector<double> by_rank = PowerLawWeights(users, options_.user_activity_exponent);
    std::vector<double> by_user(users);
    for (int32_t r = 0; r < users; ++r) by_user[order[r]] = by_rank[r];
    user_activity_.Build(by_user);
  }

  // Tastes: k distinct topics drawn by topic popularity, with Dirichlet(1) weights (normalised
  // exponentials), stored as a CDF.
  user_stride_ = 1 + 2 * k;
  user_state_.assign(static_cast<size_t>(users) * user_stride_, -1);
  for (int32_t u = 0; u < users; ++u) {
    for (int32_t j = 0; j < k; ++j) ReplaceTopic(u, j);  // slots still -1 count as free
    double w[kMaxUserTopics];
    double sum = 0;
    for (int32_t j = 0; j < k; ++j) {
      w[j] = -std::log(1.0 - rng_.Uniform());  // Uniform() < 1, so the argument is > 0
      sum += w[j];
    }
    double acc = 0;
    int32_t* cdf = UserState(u) + 1 + k;
    for (int32_t j = 0; j < k; ++j) {
      acc += w[j];
      cdf[j] = static_cast<int32_t>(std::min(acc / sum * kCdfOne, kCdfOne - 1));
    }
  }

  std::vector<double> type_p;
  type_p.reserve(options_.event_types.size());
  for (const SyntheticEventType& t : options_.event_types) type_p.push_back(t.probability);
  event_type_.Build(type_p);

  next_user_ = static_cast<int32_t>(user_activity_.Sample(rng_));
}

void SyntheticStream::ReplaceTopic(int32_t user, int32_t slot) {
  const int32_t k = options_.user_topics;
  const int32_t topics = options_.topics;
  int32_t* topics_of_u = UserState(user) + 1;
  // The new topic must differ from every topic the user holds, the replaced one included (a
  // drift that changes nothing would silently lower the drift rate).
  auto held = [&](int32_t t) {
    return std::find(topics_of_u, topics_of_u + k, t) != topics_of_u + k;
  };
  int32_t held_count = 0;
  for (int32_t j = 0; j < k; ++j) held_count += topics_of_u[j] >= 0 ? 1 : 0;
  if (held_count >= topics) return;  // every topic is already held: nowhere to drift
  // Rejection sampling by popularity; after a few misses (a steep popularity law with most
  // popular topics already held) fall back to a uniform pick among the free topics.
  for (int attempt = 0; attempt < 32; ++attempt) {
    const int32_t t = static_cast<int32_t>(topic_popularity_.Sample(rng_));
    if (!held(t)) {
      topics_of_u[slot] = t;
      return;
    }
  }
  int32_t pick = static_cast<int32_t>(rng_.Below(static_cast<uint32_t>(topics - held_count)));
  for (int32_t t = 0; t < topics; ++t) {
    if (held(t)) continue;
    if (pick-- == 0) {
      topics_of_u[slot] = t;
      return;
    }
  }
}

int32_t SyntheticStream::DrawPreferredTopic(const int32_t* state) {
  const int32_t k = options_.user_topics;
  const int32_t* topics = state + 1;
  const int32_t* cdf = state + 1 + k;
  const int32_t x = static_cast<int32_t>(rng_.Next() >> 33);  // uniform in [0, 2^31)
  for (int32_t j = 0; j < k - 1; ++j) {
    if (x < cdf[j]) return topics[j];
  }
  return topics[k - 1];
}

void SyntheticStream::NextIds(SyntheticEventIds* out) {
  // The user is drawn one event ahead so that their state can be prefetched: with a million
  // users, the state is a cache miss, and overlapping it with this event's work keeps generation
  // well above the 3M events/s that benchmark inputs need.
  const int32_t user = next_user_;
  next_user_ = static_cast<int32_t>(user_activity_.Sample(rng_));
  __builtin_prefetch(UserState(next_user_), 1);
  if (rng_.Uniform() < options_.drift_rate) {
    ReplaceTopic(user, static_cast<int32_t>(rng_.Below(options_.user_topics)));
  }

  int32_t* state = UserState(user);
  int32_t item;
  const int32_t prev = state[0];
  if (prev >= 0 && rng_.Uniform() < options_.sequential_probability) {
    const int32_t begin = successor_begin_[prev];
    const int32_t n = successor_begin_[prev + 1] - begin;
    item = successors_[begin + rng_.Below(static_cast<uint32_t>(n))];
  } else {
    const int32_t topic = rng_.Uniform() < options_.topic_concentration
                              ? DrawPreferredTopic(state)
                              : static_cast<int32_t>(topic_popularity_.Sample(rng_));
    item = topic_items_[topic_begin_[topic] + item_in_topic_[topic].Sample(rng_)];
  }
  state[0] = item;

  out->user = user;
  out->item = item;
  out->type = static_cast<int32_t>(event_type_.Sample(rng_));
  // Floor of a non-decreasing clock, so timestamps never decrease and close events share one.
  out->ts_ms = options_.start_ts_ms + static_cast<int64_t>(clock_ms_);
  clock_ms_ += -std::log(1.0 - rng_.Uniform()) * (1000.0 / options_.events_per_second);
  ++emitted_;
}

void SyntheticStream::Next(Event* out) {
  const int64_t index = emitted_;
  SyntheticEventIds ids;
  NextIds(&ids);
  char buf[24];
  buf[0] = 'u';
  out->user.assign(buf, PutInt(buf + 1, ids.user));
  buf[0] = 'i';
  out->item.assign(buf, PutInt(buf + 1, ids.item));
  const SyntheticEventType& type = options_.event_types[ids.type];
  out->type.assign(type.name);
  out->weight = type.weight;
  out->ts_ms = ids.ts_ms;
  out->position = SourcePosition{0, 0, index};
}

int32_t SyntheticStream::TopicOfItem(int32_t item) const {
  FRESHET_CHECK(item >= 0 && item < options_.items);
  return item_topic_[item];
}

absl::Span<const int32_t> SyntheticStream::SuccessorsOf(int32_t item) const {
  FRESHET_CHECK(item >= 0 && item < options_.items);
  return absl::MakeConstSpan(successors_.data() + successor_begin_[item],
                             successor_begin_[item + 1] - successor_begin_[item]);
}

absl::Span<const int32_t> SyntheticStream::ItemsOfTopic(int32_t topic) const {
  FRESHET_CHECK(topic >= 0 && topic < options_.topics);
  return absl::MakeConstSpan(topic_items_.data() + topic_begin_[topic],
                             topic_begin_[topic + 1] - topic_begin_[topic]);
}

absl::Span<const int32_t> SyntheticStream::PreferredTopicsOf(int32_t user) const {
  FRESHET_CHECK(user >= 0 && user < options_.users);
  return absl::MakeConstSpan(user_state_.data() + static_cast<size_t>(user) * user_stride_ + 1,
                             options_.user_topics);
}

void SyntheticStream::NextItemDistribution(int32_t user, int32_t previous_item,
                                           absl::Span<double> out) const {
  FRESHET_CHECK(user >= 0 && user < options_.users);
  FRESHET_CHECK(previous_item >= -1 && previous_item < options_.items);
  FRESHET_CHECK(out.size() == static_cast<size_t>(options_.items));
  const int32_t k = options_.user_topics;
  const int32_t* state = user_state_.data() + static_cast<size_t>(user) * user_stride_;
  const int32_t* topics = state + 1;
  const int32_t* cdf = state + 1 + k;
  // P(topic) of a draw that is not a successor: a preferred topic by weight with probability
  // topic_concentration, else a topic by popularity. DrawPreferredTopic compares x in [0, 2^31)
  // with the cumulative weights, the last topic taking the rest.
  const double successor_p = previous_item >= 0 ? options_.sequential_probability : 0.0;
  const double c = options_.topic_concentration;
  std::vector<double> topic_p(topic_share_.size());
  for (size_t t = 0; t < topic_p.size(); ++t) topic_p[t] = (1.0 - c) * topic_share_[t];
  double below = 0;
  for (int32_t j = 0; j < k; ++j) {
    const double upto = j < k - 1 ? static_cast<double>(cdf[j]) : kCdfOne;
    topic_p[topics[j]] += c * (upto - below) / kCdfOne;
    below = upto;
  }
  for (int32_t i = 0; i < options_.items; ++i) {
    out[i] = (1.0 - successor_p) * topic_p[item_topic_[i]] * item_share_[i];
  }
  if (previous_item >= 0) {
    const absl::Span<const int32_t> next = SuccessorsOf(previous_item);
    for (int32_t item : next) out[item] += successor_p / static_cast<double>(next.size());
  }
}

std::string SyntheticStream::UserId(int32_t user) { return absl::StrCat("u", user); }
std::string SyntheticStream::ItemId(int32_t item) { return absl::StrCat("i", item); }

// ---------------------------------------------------------------------------------------------
// Writing JSON lines.

namespace {

absl::Status IoError(int err, absl::string_view what, const std::string& path) {
  const std::string message =
      absl::StrCat(what, " ", path, ": ", std::error_code(err, std::generic_category()).message());
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    case EISDIR:
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// Where the bytes go: a plain file descriptor or a gzip stream on it. Owns the descriptor.
class Sink {
 public:
  static absl::StatusOr<Sink> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError(errno, "cannot create", path);
    Sink sink(path, fd);
    if (absl::EndsWith(path, ".gz")) {
      // Level 1: these files are regenerated rather than archived, and at higher levels
      // compression, not generation, would dominate the cost of a benchmark input.
      sink.gz_ = gzdopen(fd, "wb1");
      if (sink.gz_ == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat("cannot start gzip stream for ", path));
      }
      gzbuffer(sink.gz_, 1 << 18);
    }
    return sink;
  }

  Sink(Sink&& other) noexcept
      : path_(std::move(other.path_)),
        fd_(std::exchange(other.fd_, -1)),
        gz_(std::exchange(other.gz_, nullptr)) {}
  Sink& operator=(Sink&&) = delete;

  // Abandons the file: closes it and removes it (used after a failure).
  ~Sink() {
    if (fd_ < 0) return;
    if (gz_ != nullptr) {
      gzclose_w(gz_);  // also closes fd_
    } else {
      ::close(fd_);
    }
    ::unlink(path_.c_str());
  }

  absl::Status Write(const char* data, size_t size) {
    if (gz_ != nullptr) {
      while (size > 0) {
        const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
        if (gzwrite(gz_, data, chunk) <= 0) return GzError("cannot write");
        data += chunk;
        size -= chunk;
      }
      return absl::OkStatus();
    }
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoError(errno, "cannot write", path_);
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // Flushes and closes; the file is kept only if this succeeds.
  absl::Status Close() {
    const int fd = std::exchange(fd_, -1);
    if (gz_ != nullptr) {
      const int rc = gzclose_w(std::exchange(gz_, nullptr));
      if (rc != Z_OK) {
        const int err = errno;
        ::unlink(path_.c_str());
        if (rc == Z_ERRNO) return IoError(err, "cannot finish", path_);
        return absl::UnavailableError(
            absl::StrCat("cannot finish gzip stream ", path_, ": zlib error ", rc));
      }
      return absl::OkStatus();
    }
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(path_.c_str());
      return IoError(err, "cannot close", path_);
    }
    return absl::OkStatus();
  }

 private:
  Sink(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  absl::Status GzError(absl::string_view what) {
    int zerr = Z_OK;
    const char* msg = gzerror(gz_, &zerr);
    if (zerr == Z_ERRNO) return IoError(errno, what, path_);
    return absl::UnavailableError(
        absl::StrCat(what, " ", path_, ": zlib: ", msg != nullptr ? msg : "unknown error"));
  }

  std::string path_;
  int fd_ = -1;
  gzFile gz_ = nullptr;
};

}  // namespace

absl::Status WriteSyntheticStream(const SyntheticStreamOptions& options, const std::string& path,
                                  const std::function<void(int64_t written)>& progress) {
  if (path.empty()) return absl::InvalidArgumentError("synthetic stream: empty output path");
  FRESHET_ASSIGN_OR_RETURN(SyntheticStream stream, SyntheticStream::Create(options));
  FRESHET_ASSIGN_OR_RETURN(Sink sink, Sink::Open(path));

  // One EventCodec::Encode line per event, written in chunks of about a megabyte.
  constexpr size_t kChunkBytes = 1 << 20;
  std::string chunk;
  chunk.reserve(kChunkBytes + 1024);
  Event event;
  for (int64_t i = 0; i < options.events; ++i) {
    stream.Next(&event);
    EventCodec::Encode(event, &chunk);
    chunk.push_back('\n');
    if (chunk.size() >= kChunkBytes) {
      FRESHET_RETURN_IF_ERROR(sink.Write(chunk.data(), chunk.size()));
      chunk.clear();
    }
    if (progress && (i + 1) % kProgressEvery == 0 && i + 1 < options.events) progress(i + 1);
  }
  FRESHET_RETURN_IF_ERROR(sink.Write(chunk.data(), chunk.size()));
  FRESHET_RETURN_IF_ERROR(sink.Close());
  if (progress) progress(options.events);
  return absl::OkStatus();
}

}  // namespace freshet::stream
