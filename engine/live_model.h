// LiveModel: the learner the engine teaches and serves from — the learner itself, the lock that
// orders learning and reading, the hidden items, the published model version and the batched
// scoring of recommendation queries.
//
// Thread safety: every method may be called from any thread. Learning takes the learner's lock
// exclusively for at most kApplySlice events at a time, and for fewer where events learn slowly
// (about kApplyHoldNs of learning per hold, see SliceFor); reads take it shared; a waiting writer
// goes before later readers (RwLock). The model version is an atomic, so reading it never waits.
// Lock order: scoring_mu_ before mu_, mu_ before hidden_mu_ and scorer_mu_; callbacks of
// WithLearnerExclusive() may take the exactly-once filter's lock (ExactlyOnceFilter) but nothing
// that waits on storage.
#ifndef FRESHET_ENGINE_LIVE_MODEL_H_
#define FRESHET_ENGINE_LIVE_MODEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/mutex.h"
#include "common/rw_lock.h"
#include "config/config.h"
#include "engine/model_reader.h"
#include "kernels/backend.h"
#include "kernels/packed_items.h"
#include "learner/learner.h"
#include "stream/event.h"

namespace freshet::engine {

class LiveModel final : public ModelReader {
 public:
  // A new, empty learner of `algorithm` (learner::Learner::Create).
  static absl::StatusOr<std::unique_ptr<LiveModel>> Create(const std::string& algorithm,
                                                           const config::Config& config,
                                                           const kernels::Backend* backend);
  ~LiveModel() override;  // Stop()
  LiveModel(const LiveModel&) = delete;
  LiveModel& operator=(const LiveModel&) = delete;

  // Starts batched scoring and its thread (before it, every query is answered on its caller's
  // thread).
  void Start();
  // Answers what is queued and joins the scoring thread. Idempotent.
  void Stop();

  // Events learnt per exclusive-lock hold, at most.
  static constexpr size_t kApplySlice = 512;
  // Learning time per exclusive-lock hold that Apply() aims at. bpr learns a full slice in about
  // a millisecond; a model that spends tens of microseconds to milliseconds on an event (blend's
  // ranker steps and components) would keep every read waiting for a slice's worth of them.
  static constexpr int64_t kApplyHoldNs = 2'000'000;
  // Events for the next hold, given the learning time per event measured so far (0: nothing
  // measured yet): as many as fit in kApplyHoldNs, at least 1, at most kApplySlice.
  static size_t SliceFor(double ns_per_event);

  // --- Learning (the ingest loop; ApplyAdmitted also the direct-event path).
  // Learns `events` in slices (SliceFor), taking the lock exclusively for each. The learner's
  // deferred work (blend's ease fit) runs between two slices with the lock held shared: the event
  // that makes it due ends a slice, so the next event is learnt after it, as in a replay.
  void Apply(absl::Span<const stream::Event> events);
  // Learns, under one exclusive hold, the events of `events` that `admit` accepts (called under
  // that hold, in order). Returns how many were admitted.
  int64_t ApplyAdmitted(absl::Span<const stream::Event> events,
                        const std::function<bool(const stream::Event&)>& admit);
  // Runs `fn(learner)` with the lock held shared (persisting, inspection) or exclusively
  // (replica exchanges, loading). `fn` must not wait on anything slow: reads queue behind it.
  template <typename Fn>
  auto WithLearner(Fn&& fn) const {
    ReaderLock lock(&mu_);
    return fn(static_cast<const learner::Learner&>(*learner_));
  }
  template <typename Fn>
  auto WithLearnerShared(Fn&& fn) {
    ReaderLock lock(&mu_);
    return fn(*learner_);
  }
  template <typename Fn>
  auto WithLearnerExclusive(Fn&& fn) {
    WriterLock lock(&mu_);
    return fn(*learner_);
  }
  // Prepares the learner's pending deferred work (an ease fit) holding mu_ shared, so reads go
  // on, and installs it holding mu_ exclusively; nothing when none is pending. Learning runs it
  // itself; a serving replica's follower runs it after each batch of the model topic.
  void RunDeferredWork() ABSL_LOCKS_EXCLUDED(mu_);
  // Swaps in another learner (a restored snapshot's); `also`, if any, runs under the same hold.
  void Replace(std::unique_ptr<learner::Learner> fresh, const std::function<void()>& also);

  // --- Item availability: a hidden item is left out of every answer but keeps learning.
  // Sets the hidden list (sorted here).
  void SetHiddenItems(std::vector<std::string> items);
  // The list with `item` hidden or shown; false when that changes nothing.
  bool WithItemHidden(const std::string& item, bool hidden, std::vector<std::string>* out) const;

  // The model version every answer reports (see ModelReader::model_version()).
  void PublishModelVersion(int64_t version) {
    model_version_.store(version, std::memory_order_relaxed);
  }
  // Calls `observe(seconds)` for every event learnt that has an arrival time
  // (stream::Event::received_ms): the wall time from its arrival to its being learnt. Set before
  // events flow; called under the learner's exclusive lock, so it must be quick.
  void SetFreshnessObserver(std::function<void(double)> observe) {
    WriterLock lock(&mu_);
    freshness_observer_ = std::move(observe);
  }
  // Without a data directory: every learning round publishes the number of rounds so far as the
  // model version. Call before Start() and before any learning.
  void CountRoundsAsVersion() { rounds_are_version_ = true; }

  // --- ModelReader.
  void RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                      const std::vector<std::string>& exclude_items,
                      RecommendDone done) const override;
  absl::Status SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const override;
  UserInfo User(absl::string_view user) const override;
  std::vector<std::string> HiddenItems() const override;
  int64_t model_version() const override { return model_version_.load(std::memory_order_relaxed); }
  ModelInfo info() const override;
  ModelStats stats() const override;
  // A recommendation answered on the caller's thread (tools and tests).
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         learner::Recommendation* out) const;

 private:
  LiveModel(std::string algorithm, bool batch_scoring, bool packed_items,
            std::unique_ptr<learner::Learner> learner);
  // Learns `events`; the caller holds mu_ exclusively.
  void ApplyHeld(absl::Span<const stream::Event> events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sorted rows of the hidden items known to the learner; the same plus the known ones of
  // `exclude_items`; a user's freshness.
  std::vector<int32_t> HiddenRowsLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::vector<int32_t> ExcludedRowsLocked(const std::vector<std::string>& exclude_items) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  UserInfo UserInfoLocked(absl::string_view user) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // Batched scoring: RecommendAsync() queues inner-product queries, and whoever drains the queue
  // (AnswerQueued) takes everything queued, up to kMaxBatch at a time, scores it in one TopK call
  // under the shared lock and answers each. A caller inside a BurstEnd scope (an HTTP I/O thread
  // during one round of ready connections) drains it itself when its round ends, so a round's
  // queries form one batch with no hand-over to another thread; any other caller wakes the
  // scoring thread (ScorerLoop), where requests arriving meanwhile form the next batch. Batches
  // grow with load and no request waits for a timer.
  static constexpr size_t kMaxBatch = 256;
  struct AsyncScore {
    std::vector<float> vector;
    std::vector<int32_t> exclude;
    int k = 0;
    RecommendResult result;  // user freshness filled in when queued
    RecommendDone done;
  };
  void ScorerLoop();
  // Answers every queued query, a batch at a time, on the calling thread.
  void AnswerQueued() const ABSL_LOCKS_EXCLUDED(scoring_mu_, mu_, scorer_mu_);
  // One batch's top-K (Learner::TopKBatch), from the packed copy where it applies.
  absl::Status TopKBatchLocked(absl::Span<const kernels::TopKQuery> queries, int k,
                               absl::Span<std::vector<kernels::ScoredItem>> results) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scoring_mu_) ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string algorithm_;
  const bool batch_scoring_;
  const bool packed_items_;  // serve.packed_items
  // Held by the thread scoring a batch: one at a time owns the packed copy and its buffers.
  mutable Mutex scoring_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable RwLock mu_;
  std::unique_ptr<learner::Learner> learner_ ABSL_GUARDED_BY(mu_) ABSL_PT_GUARDED_BY(mu_);
  mutable Mutex hidden_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<std::string> hidden_ ABSL_GUARDED_BY(hidden_mu_);  // sorted ids
  std::atomic<int64_t> model_version_{0};
  int64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;
  // Learning time per event, a moving average over the holds so far (0: none yet).
  double ns_per_event_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(double)> freshness_observer_
      ABSL_GUARDED_BY(mu_);          // learning rounds (ApplyHeld calls that learnt)
  bool rounds_are_version_ = false;  // set before any thread uses the model
  std::atomic<int64_t> last_applied_ns_{0};
  mutable std::atomic<int64_t> scoring_batches_{0};
  mutable std::atomic<int64_t> scoring_queries_{0};
  mutable std::atomic<int64_t> scoring_groups_packed_{0};
  mutable Mutex scorer_mu_ ABSL_ACQUIRED_AFTER(mu_);
  mutable CondVar scorer_cv_;
  mutable std::vector<std::unique_ptr<AsyncScore>> scorer_queue_ ABSL_GUARDED_BY(scorer_mu_);
  bool scorer_running_ ABSL_GUARDED_BY(scorer_mu_) = false;
  // Between Start() and Stop(): requests may be queued for the scoring thread. Read by every
  // request without scorer_mu_; the queueing itself checks scorer_stop_ under it.
  std::atomic<bool> scorer_accepting_{false};
  bool scorer_stop_ ABSL_GUARDED_BY(scorer_mu_) = false;
  std::thread scorer_;  // Start() .. Stop(), which both serialise on start_stop_mu_
  // The packed copy of the item vectors (kernels/packed_items.h), current as of the latest batch.
  // Replace() moves the generation, so the copy of a replaced learner is dropped rather than
  // patched.
  mutable kernels::PackedItemMatrix packed_ ABSL_GUARDED_BY(scoring_mu_);
  mutable uint64_t packed_generation_ ABSL_GUARDED_BY(scoring_mu_) = 0;
  std::atomic<uint64_t> learner_generation_{0};
  Mutex start_stop_mu_;
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_LIVE_MODEL_H_
