// Model: one online recommendation algorithm, as the sum of the narrow interfaces its users take
// (learning, scoring, the row codec, replicated item state, diagnostics). The Learner owns the
// shared state (id dictionaries, user histories, popularity) and drives a Model through them;
// replay evaluation and serving use the same Learner, so they exercise the same code.
#ifndef FRESHET_LEARNER_MODEL_H_
#define FRESHET_LEARNER_MODEL_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/backend.h"
#include "learner/dirty_rows.h"

namespace freshet::learner {

// What LearningModel::PrepareDeferredWork() hands to InstallDeferredWork(); each model derives
// its own.
class DeferredWork {
 public:
  virtual ~DeferredWork() = default;
};

// One event, resolved to dense rows, as a Model sees it.
struct Interaction {
  int32_t user = -1;
  int32_t item = -1;
  float weight = 1.0f;
  int64_t ts_ms = 0;
  // The user's latest items before this event, oldest first, newest last (may be empty).
  absl::Span<const int32_t> recent;
  // Items known when this event is applied, its own included (rows [0, catalog)). Models may have
  // been grown further ahead by batched learning; rows at or above this must be ignored.
  int32_t catalog = 0;
};

// A recommendation request for a known user.
struct UserQuery {
  int32_t user = -1;
  absl::Span<const int32_t> recent;   // latest items, oldest first, including every applied event
  absl::Span<const int32_t> exclude;  // item rows never to return, sorted ascending
};

// A model's parts, one interface per kind of user: the Learner's event loop learns through
// LearningModel; recommendations, similar items and exports score through ScoringModel; the
// persisted form goes through RowCodec; replicas exchange ReplicatedItems; status and capacity
// reports read ModelDiagnostics. Model is their sum, the one class each algorithm implements.
//
// Locking: the Learner's callers hold its lock exclusively to learn, load, reset or merge, and
// shared to read; each interface says which of its calls are reads.

// Learning from events.
// Not thread-safe: every call needs the model to itself (the Learner's lock held exclusively).
class LearningModel {
 public:
  virtual ~LearningModel() = default;

  // The dictionaries grew to `users` users and `items` items; called before the first Learn() that
  // refers to a new row.
  virtual void Grow(int32_t users, int32_t items) = 0;

  // Learns from one event. A micro-batching model may hold it until Flush() or until its batch is
  // full; reads (Recommend, QueryVector, Encode*, ...) then see the state before the held events.
  virtual void Learn(const Interaction& event) = 0;

  // Learns every held event (see Learn). The Learner calls it at the end of each ApplyBatch(),
  // before it forgets users, and before it reports changes for persistence.
  virtual void Flush() {}

  // Hints that Learn() for this event follows soon, so the rows it reads can be fetched into
  // cache ahead of time. Rows must exist (after Grow()). Optional.
  virtual void Prefetch(const Interaction& /*upcoming*/) const {}

  // Deferred work: a costly step that an event makes due (blend's ease fit), split off its
  // learning so that readers need not wait for it. With deferral on, the event that makes it due
  // only marks it; the caller then runs PrepareDeferredWork() (const: it reads the model, so
  // readers may score meanwhile, but nothing may learn) and hands the result to
  // InstallDeferredWork(). A Learn() with the work still pending does it first, so what is learnt
  // never depends on whether, or when, the caller ran it: the work always sees the model as the
  // event that made it due left it. On a serving replica, FollowEvents() marks it, and the
  // follower runs it after the batch. Models without such work keep these defaults.
  virtual void set_defer_work(bool /*on*/) {}
  // Learn() calls until the one that makes work due (>= 1), or INT64_MAX for none ahead.
  virtual int64_t LearnsBeforeDeferredWork() const { return std::numeric_limits<int64_t>::max(); }
  virtual bool DeferredWorkPending() const { return false; }
  virtual std::unique_ptr<DeferredWork> PrepareDeferredWork() const { return nullptr; }
  // Installs prepared work if it is still the pending work (else drops it: a Learn() did it).
  virtual void InstallDeferredWork(std::unique_ptr<DeferredWork> /*work*/) {}
};

// Scoring: recommendations, batched top-K, and the vectors that exports write.
// Thread-compatible: any number of threads may call it at once, never while a non-const call of
// another of the model's interfaces runs (the Learner's lock held shared).
class ScoringModel {
 public:
  virtual ~ScoringModel() = default;

  // Writes the best min(k, available) items for the query into *out, best first (see
  // kernels::RanksBefore).
  virtual absl::Status Recommend(const UserQuery& query, int k,
                                 std::vector<kernels::ScoredItem>* out) const = 0;

  // Dense scores of every item row for the query (scores.size() == catalog size), for blends.
  virtual void ScoreAll(const UserQuery& query, absl::Span<float> scores) const = 0;

  // For batched serving: writes the query vector Recommend() scores against ScoringMatrix()
  // (stride floats, see kernels::ItemMatrixView) and returns true; false when the model does not
  // score by one inner product (cooc, hybrid, popularity). Recommend() must then equal TopK of
  // that vector over ScoringMatrix() with the query's exclusions.
  virtual bool QueryVector(const UserQuery& /*query*/, std::vector<float>* /*out*/) const {
    return false;
  }
  virtual kernels::ItemMatrixView ScoringMatrix() const { return {}; }
  // Batched top-K of QueryVector() results against ScoringMatrix() (same contract as
  // kernels::Backend::TopK). Models whose parameters live on a device score them there.
  virtual absl::Status TopKBatch(const kernels::Backend& backend,
                                 absl::Span<const kernels::TopKQuery> queries, int k,
                                 absl::Span<std::vector<kernels::ScoredItem>> results) const {
    return backend.TopK(ScoringMatrix(), queries, k, results);
  }

  // The item vectors, for export; rows == 0 when the model has none (cooc, popularity).
  virtual kernels::ItemMatrixView ItemVectors() const { return {}; }
  // A user's long-term vector (dim floats) for export, or null when the model has none.
  virtual const float* UserVector(int32_t /*row*/) const { return nullptr; }
};

// Persistence (store/): a model writes its part of a user or item row as opaque bytes and reads
// them back into a model grown to the same size. The Learner marks the event's user and item
// dirty; a model marks every other item row it changes through Model::MarkItem().
// Thread-compatible: EncodeUser() and EncodeItem() are reads (as ScoringModel's calls);
// DecodeUser(), DecodeItem(), FinishLoad() and ResetUser() need the model to themselves.
class RowCodec {
 public:
  virtual ~RowCodec() = default;

  // Appends the model's state of a row to `out`.
  virtual void EncodeUser(int32_t /*row*/, std::string* /*out*/) const {}
  virtual void EncodeItem(int32_t /*row*/, std::string* /*out*/) const {}
  // Restores a row from EncodeUser/EncodeItem output. The bytes come from outside (a store on
  // disk, a model topic, Redis): DataLoss when `in` is malformed or holds a value the encoder
  // cannot write (a NaN, an infinity, a negative accumulator or count, a row out of range), and
  // then the row is exactly as it was before the call. A model that stores nothing takes only the
  // empty value.
  virtual absl::Status DecodeUser(int32_t row, absl::string_view in) {
    return NothingStored("user", row, in);
  }
  virtual absl::Status DecodeItem(int32_t row, absl::string_view in) {
    return NothingStored("item", row, in);
  }
  // As DecodeItem(), on a serving replica (Learner::FollowItem): only what scoring reads needs to
  // be restored, and the row may refer to user rows the replica does not have.
  virtual absl::Status DecodeServedItem(int32_t row, absl::string_view in) {
    return DecodeItem(row, in);
  }
  // On a serving replica (Learner::FollowItemsDone), after a batch of followed messages: how many
  // events the followed state has learnt (FinishLoad's `events`), for the state that depends on
  // it, and whether item rows came with the batch (a learner's round may span batches). Called
  // often: must be cheap.
  virtual void FollowEvents(int64_t /*events*/, bool /*rows_followed*/) {}
  // Every row was decoded; rebuilds derived state (Gramians, norms, sampling tables). `users` and
  // `items` are the rows in use (items: the catalog); `events` is how many events the loaded state
  // has learnt (schedules that depend on the stream's length continue from there).
  virtual void FinishLoad(int32_t /*users*/, int32_t /*items*/, int64_t /*events*/) {}
  // Returns a user row to its initial state (the row is being reused for a new user).
  virtual void ResetUser(int32_t /*row*/) {}

 private:
  static absl::Status NothingStored(const char* kind, int32_t row, absl::string_view in) {
    if (in.empty()) return absl::OkStatus();
    return absl::DataLossError(
        absl::StrCat(kind, " row ", row, ": ", in.size(), " bytes where the model stores nothing"));
  }
};

// Replicas (Learner::TakeReplicaChanges): the item parameters that replicas of the model in other
// processes keep equal, ReplicaItemWidth() floats per item row. The model chooses what they are
// (bpr: vectors, biases and their Adagrad accumulators, which merge by summing like the
// parameters).
// Thread-compatible: ReplicaItemWidth() and ReadReplicaItem() are reads (as ScoringModel's
// calls); WriteReplicaItem() and ReplicaWritesDone() need the model to themselves.
class ReplicatedItems {
 public:
  virtual ~ReplicatedItems() = default;

  // Floats per item row; 0 when the model cannot be replicated.
  virtual int ReplicaItemWidth() const { return 0; }
  // Writes a row's replicated parameters as they are now, or (initial) as the row started out
  // before anything was learnt.
  virtual void ReadReplicaItem(int32_t /*row*/, bool /*initial*/, float* /*out*/) const {}
  // OK when `in` (ReplicaItemWidth() floats, from other processes) holds values the model can
  // take; DataLoss naming what is wrong (a NaN, an infinity, a negative accumulator) otherwise.
  virtual absl::Status CheckReplicaItem(const float* /*in*/) const { return absl::OkStatus(); }
  // Overwrites a row's replicated parameters with merged values (checked by CheckReplicaItem()).
  virtual void WriteReplicaItem(int32_t /*row*/, const float* /*in*/) {}
  // After a round of WriteReplicaItem(): a model that also keeps its parameters on a device
  // copies the rewritten rows there.
  virtual void ReplicaWritesDone() {}
};

// What a model reports about itself, for status lines, metrics and capacity planning.
// Thread-compatible: every call is a read (as ScoringModel's calls).
class ModelDiagnostics {
 public:
  virtual ~ModelDiagnostics() = default;

  // Where the model learns: "host" (the CPU, event by event), or the micro-batch trainer's name
  // ("reference", "cuda: <device>"); and how many micro-batches failed on the device and were
  // learnt on the host instead.
  virtual std::string Learning() const { return "host"; }
  virtual int64_t DeviceFallbacks() const { return 0; }
  // Events whose update was skipped because it would have written a non-finite value (NaN or
  // infinity) into a row; nothing of such an event is learnt by the model.
  virtual int64_t NonFiniteSkips() const { return 0; }
  // Bytes the model holds per user row and per item row (for capacity planning; approximate).
  virtual int64_t BytesPerUser() const { return 0; }
  virtual int64_t BytesPerItem() const { return 0; }
};

// One online recommendation algorithm: every part above. The Learner owns it and hands each of
// its users the one part it needs.
// Not thread-safe as a whole: each part's contract above applies to its calls; set_dirty_items()
// needs the model to itself.
class Model : public LearningModel,
              public ScoringModel,
              public RowCodec,
              public ReplicatedItems,
              public ModelDiagnostics {
 public:
  ~Model() override = default;

  virtual std::string name() const = 0;

  // Where MarkItem() records item rows changed beyond the event's own item (may be null).
  virtual void set_dirty_items(DirtyRows* dirty) { dirty_items_ = dirty; }

 protected:
  void MarkItem(int32_t row) {
    if (dirty_items_ != nullptr) dirty_items_->Mark(row);
  }
  DirtyRows* dirty_items() const { return dirty_items_; }

 private:
  DirtyRows* dirty_items_ = nullptr;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_MODEL_H_
