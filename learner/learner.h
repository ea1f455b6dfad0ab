// Learner: the online learning state of one model — id dictionaries, user histories, popularity and
// the algorithm's parameters — updated one event at a time and queried for recommendations. The
// replay evaluator and the server use this same class.
#ifndef FRESHET_LEARNER_LEARNER_H_
#define FRESHET_LEARNER_LEARNER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/huge_page_allocator.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/dirty_rows.h"
#include "learner/id_dictionary.h"
#include "learner/model.h"
#include "learner/popularity.h"
#include "learner/popularity_model.h"
#include "learner/trainers/bpr_trainer.h"
#include "learner/user_history.h"
#include "stream/event.h"

namespace freshet::learner {

// The algorithms Learner::Create accepts.
const std::vector<std::string>& AlgorithmNames();

// What changed since the last Learner::TakeChanges(): rows to write and user rows to delete.
// A row may be in both `erased_users` and `users` (expired, then reused by a new user): delete
// first, then write.
struct StateChanges {
  std::vector<int32_t> users;
  std::vector<int32_t> items;
  std::vector<int32_t> erased_users;
  bool globals = false;  // EncodeGlobals() changed
  bool empty() const { return users.empty() && items.empty() && erased_users.empty() && !globals; }
};

// Approximate memory held, for capacity planning.
struct MemoryUsage {
  int64_t users = 0;  // live users
  int64_t items = 0;
  int64_t user_bytes = 0;  // everything held for users: model rows, histories, ids, hash slots
  int64_t item_bytes = 0;
  double bytes_per_user() const { return users > 0 ? static_cast<double>(user_bytes) / users : 0; }
  double bytes_per_item() const { return items > 0 ? static_cast<double>(item_bytes) / items : 0; }
};

struct Recommendation {
  std::vector<kernels::ScoredItem> items;
  bool personalized = false;  // false: popularity (unknown user, or the popularity model)
};

// What one MergeReplicaChanges() did.
struct ReplicaMergeStats {
  int64_t rows_received = 0;  // entries from the other replicas
  int64_t rows_merged = 0;    // item rows rewritten here
  int64_t items_added = 0;    // items this replica had not seen
  bool catch_up = false;      // a replica joined: a catch-up exchange follows (ReplicaCatchUp)
};

// Not thread-safe: callers serialise Apply() and Recommend().
class Learner {
 public:
  // `algorithm` is one of AlgorithmNames(); InvalidArgument otherwise. `backend` must outlive the
  // learner.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend);
  // As above, with bpr's micro-batch trainer made by `make_trainer` instead of NewBprTrainer
  // (learner/trainers/bpr_trainer.h), e.g. a stand-in for a device in tests.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend,
                                                         BprTrainerFactory make_trainer);

  // Learns from one event; new users and items join the dictionaries. Events must be valid (the
  // sources reject malformed ones): non-empty ids, finite non-negative weight.
  void Apply(const stream::Event& event);

  // Learns from events in order; the result is identical to calling Apply() on each, then
  // Flush(). Faster for large batches: ids are resolved first, then each event's rows are
  // prefetched a few events ahead of its update, hiding memory latency on large tables.
  void ApplyBatch(absl::Span<const stream::Event> events);
  // A micro-batching model (bpr on a GPU, or kernels.micro_batch > 0) may hold up to a batch of
  // events that Apply() passed it; this learns them. ApplyBatch(), TakeChanges() and
  // ExpireUsers() do it themselves.
  void Flush() { learning().Flush(); }
  // Deferred work (LearningModel): a caller that defers it ends a batch at the event that makes it
  // due (LearnsBeforeDeferredWork() events ahead at most), then prepares it holding the lock
  // shared and installs it holding it exclusively, before the next event.
  void set_defer_work(bool on) { learning().set_defer_work(on); }
  int64_t LearnsBeforeDeferredWork() const { return model_->LearnsBeforeDeferredWork(); }
  bool DeferredWorkPending() const { return model_->DeferredWorkPending(); }
  std::unique_ptr<DeferredWork> PrepareDeferredWork() const {
    return model_->PrepareDeferredWork();
  }
  void InstallDeferredWork(std::unique_ptr<DeferredWork> work) {
    learning().InstallDeferredWork(std::move(work));
  }

  // Top-k items for an external user id. Unknown users get popularity: what other users took at
  // their first event (popularity.new_users = first; Popularity::NewUserScores), or all-time
  // (= all, and always for the popularity model). With exclude_seen, items in the user's history
  // are left out. InvalidArgument for k < 1.
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         Recommendation* out) const {
    return Recommend(user, k, exclude_seen, {}, out);
  }
  // As above, also leaving out the item rows in `also_exclude` (sorted ascending: hidden items,
  // a request's own filters).
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         absl::Span<const int32_t> also_exclude, Recommendation* out) const;

  // For batched serving: what Recommend() would score for a known user of an inner-product model —
  // the query vector and the sorted exclusions (seen items if asked, plus `also_exclude`). False
  // for an unknown user or a model that does not score by one inner product; call Recommend().
  bool PrepareQuery(absl::string_view user, bool exclude_seen,
                    absl::Span<const int32_t> also_exclude, std::vector<float>* vector,
                    std::vector<int32_t>* exclude) const;
  // The matrix PrepareQuery()'s vectors are scored against (valid until the learner changes).
  kernels::ItemMatrixView ScoringMatrix() const { return scoring().ScoringMatrix(); }
  // A version per group of kernels::PackedItemMatrix::kGroupRows item rows: every change of an
  // item row (the event's item, the rows a model marks, replica merges) moves its group's version,
  // so a packed copy of ScoringMatrix() can be kept current group by group.
  absl::Span<const uint32_t> item_group_versions() const { return dirty_items_.group_versions(); }
  // The same per item row.
  absl::Span<const uint32_t> item_row_versions() const { return dirty_items_.row_versions(); }
  // Top-K of PrepareQuery() vectors (backend().TopK over ScoringMatrix(), or on the device that
  // holds the model's parameters).
  absl::Status TopKBatch(absl::Span<const kernels::TopKQuery> queries, int k,
                         absl::Span<std::vector<kernels::ScoredItem>> results) const {
    return scoring().TopKBatch(*backend_, queries, k, results);
  }
  const kernels::Backend& backend() const { return *backend_; }

  // Items similar to `item`: by inner product of item vectors for embedding models, by
  // co-occurrence for cooc, by popularity for the popularity model. The item itself and
  // `also_exclude` (sorted) are left out. NotFound for an unknown item.
  absl::Status Similar(absl::string_view item, int k, absl::Span<const int32_t> also_exclude,
                       std::vector<kernels::ScoredItem>* out) const;

  const IdDictionary& users() const { return users_; }
  const IdDictionary& items() const { return items_; }
  const Popularity& popularity() const { return popularity_; }
  // A known user's history and counters; `user_row` must be in [0, users().size()).
  const UserHistory& history(int32_t user_row) const { return histories_[user_row]; }
  int64_t events_applied() const { return events_applied_; }
  // Events not learnt because their user or item has not yet passed the admission filter
  // (memory.admit_min_events).
  int64_t events_filtered() const { return events_filtered_; }
  // Events refused by the learner itself: a weight that is not finite or outside
  // [0, events.max_weight], or a timestamp outside [1970, 2100). The decoders refuse these
  // already; this is the last guard for events handed to Apply() directly. Not persisted.
  int64_t events_rejected() const { return events_rejected_; }
  // Events whose model update was skipped as non-finite (ModelDiagnostics::NonFiniteSkips()).
  int64_t nonfinite_skips() const { return diagnostics().NonFiniteSkips(); }
  int64_t users_expired() const { return users_expired_; }
  const std::string& algorithm() const { return algorithm_; }
  const config::Config& config() const { return config_; }
  // The model's scoring part: besides what Recommend(), Similar() and TopKBatch() use, the item
  // and user vectors that exports write.
  const ScoringModel& scoring() const { return *model_; }
  // What the model reports about itself: where it learns, device fallbacks, bytes per row.
  const ModelDiagnostics& diagnostics() const { return *model_; }
  // Wall-clock time recorded as each user's "applied at" by the following events (0: none).
  void set_apply_clock_ns(int64_t ns) { apply_clock_ns_ = ns; }
  MemoryUsage Memory() const;

  // Forgets users whose latest event is more than memory.user_ttl_s older than `now_ms` (event
  // time); their rows are freed for reuse and reported by TakeChanges(). Apply() and ApplyBatch()
  // call it as event time advances; callers may too (e.g. on an idle stream). Returns how many
  // users expired.
  int64_t ExpireUsers(int64_t now_ms);

  // --- Replicas: learners in separate processes that each learn their own users (their own Kafka
  // partitions) and keep one item model; engine::Engine exchanges their messages through a
  // Collective every replicas.sync_ms. Between exchanges a learner records the item rows
  // it changes. TakeReplicaChanges() encodes each as (item id, change since the last merge);
  // rows new since then also carry their starting value. Every replica merges every replica's
  // message in rank order with the same arithmetic: value = start + sum of the changes in rank
  // order, where start is the value at the last merge, or for a new row the lowest rank's
  // starting value. So item parameters end bitwise equal on every replica, and each replica's
  // learning counts once. The model decides which item state replicates
  // (ReplicatedItems::ReplicaItemWidth; bpr includes its Adagrad accumulators); popularity and
  // users stay each replica's own.
  //
  // A replica joins (its first exchange after EnableReplicas(): a start, a restore) by sending
  // every item row as new, with its value as the start: its rows win over the group's. When some
  // replicas join and some do not, a catch-up exchange follows, in which the lowest non-joining
  // rank sends its whole item table, so the joiners receive the rows they lack.
  //
  // Starts recording changes; the next TakeReplicaChanges() joins. FailedPrecondition for a model
  // without replicated item parameters (bpr has them; ials, cooc, hybrid, blend and popularity do
  // not).
  absl::Status EnableReplicas();
  bool replicas_enabled() const { return replicas_ != nullptr; }
  // This replica's message for the next exchange (requires EnableReplicas()).
  std::string TakeReplicaChanges();
  // Merges every replica's message of one exchange, element r from rank r (`rank` is this
  // replica's; its own message is element `rank`). Items unknown here join the dictionary. On an
  // error nothing changes: DataLoss for a malformed message, FailedPrecondition for one from a
  // model of another width, or one that changes an item this replica never received outside a
  // join (the replicas did not start together).
  absl::Status MergeReplicaChanges(absl::Span<const std::string> messages, int rank,
                                   ReplicaMergeStats* stats);
  // After a merge that set stats->catch_up: this replica's message for the catch-up exchange (the
  // whole item table from the lowest non-joining rank, an empty message from the others), which
  // is merged with MergeReplicaChanges() like any other.
  std::string ReplicaCatchUp();

  // --- Serving replicas (engine/follower/): stateless serving processes answer from a copy of
  // this learner's item rows (published to a model topic) and its users' rows (published to Redis
  // and read per request), in the persisted forms below. Item rows keep their row numbers on the
  // replica (user histories and cooc neighbours refer to them); user rows are the replica's own.
  //
  // Publishing (the learning side): from now on, records the users and items whose persisted
  // form changes, apart from the persister's record. Idempotent.
  void EnablePublishing();
  bool publishing_enabled() const { return publish_ != nullptr; }
  struct PublishedChanges {
    std::vector<int32_t> users;  // live users only
    std::vector<int32_t> items;
  };
  // What changed since the previous call (requires EnablePublishing()); clears the record.
  PublishedChanges TakePublishedChanges();
  // Every item row (and with `users` every live user), as if all had changed: a publisher's first
  // round publishes the full state.
  void MarkAllPublished(bool users);
  // A user as replicas read it: EncodeUser() and EncodeHistory() of the row, and the wall time it
  // was last learnt (ns since the epoch; 0 unknown).
  void EncodePublishedUser(int32_t row, std::string* out) const;

  // Following (the serving side, a learner that never learns): FollowGlobals() with a learner's
  // EncodeGlobals() (the algorithm and dimension must be this learner's: FailedPrecondition),
  // FollowItem() with an item row's EncodeItem(), in any order and repeated as the item changes,
  // then FollowItemsDone() before the next read. `version` orders the states of one row (the
  // publishing time): a state older than the one the row has is skipped, so a replica may apply
  // an export and then a topic that starts before it. DataLoss for a malformed value (one the
  // model's decoder or popularity refuses: a NaN, an infinity, a negative accumulator or count,
  // ...), or an item row that another learner's state gave another id; a refused row, its
  // popularity included, keeps serving exactly as before.
  absl::Status FollowGlobals(absl::string_view globals, int64_t version);
  absl::Status FollowItem(int32_t row, absl::string_view value, int64_t version);
  absl::Status FollowItemsDone();
  // Item rows received so far (rows between them not yet received are not live).
  int32_t followed_items() const { return static_cast<int32_t>(followed_item_ids_.size()); }
  // Takes a user's EncodePublishedUser() form into this learner (the user's row is added, or
  // overwritten) and returns the row. Items the user met that have not been followed yet are left
  // out of the user's history. DataLoss for a malformed value; a user this learner had is then
  // left exactly as it was.
  absl::StatusOr<int32_t> FollowUser(absl::string_view published);
  // Forgets a followed user (a replica's cache keeps a bounded number).
  void ForgetUser(int32_t row);

  // --- Persistence (store/). Every persisted value starts with kFormatVersion.
  static constexpr uint8_t kFormatVersion = 1;
  // Unknown users (popularity.new_users = first): first events' worth of all-time popularity
  // mixed into what new users took (Popularity::NewUserScores).
  static constexpr double kNewUserPrior = 50;

  // Rows changed since the previous call; clears the record.
  StateChanges TakeChanges();
  // The persisted form of a user (id and model row), of a user's history, of an item (id,
  // popularity and model row) and of the state shared by all rows.
  void EncodeUser(int32_t row, std::string* out) const;
  void EncodeHistory(int32_t row, std::string* out) const;
  void EncodeItem(int32_t row, std::string* out) const;
  void EncodeGlobals(std::string* out) const;

  // Loading into a new Learner: BeginLoad with the globals (sizes the tables), then every stored
  // user, history and item row (users and histories may be loaded from two threads at once; each
  // row once), then FinishLoad. Errors are DataLoss naming what is wrong (an unknown format
  // version, a malformed value, a row out of range); FailedPrecondition when the stored algorithm
  // or dimension differs from this learner's.
  absl::Status BeginLoad(absl::string_view globals);
  absl::Status LoadUser(int32_t row, absl::string_view value);
  absl::Status LoadHistory(int32_t row, absl::string_view value);
  absl::Status LoadItem(int32_t row, absl::string_view value);
  absl::Status FinishLoad();

 private:
  Learner(std::string algorithm, const config::Config& config, const kernels::Backend* backend);
  const kernels::Backend* backend_;

  // DataLoss unless `users` user rows and `items` item rows, as a state's globals claim (`what`
  // names them), fit in memory.max_state_mb (0: this machine's memory): a corrupt count must be
  // refused, not allocated until the process is killed.
  absl::Status CheckRowsFit(absl::string_view what, int64_t users, int64_t items) const;

  // The parts of model_ that the event loop, persistence and replicas (replicas.cc) use.
  LearningModel& learning() { return *model_; }
  RowCodec& codec() { return *model_; }
  const RowCodec& codec() const { return *model_; }
  ReplicatedItems& replicated_items() { return *model_; }

  struct Rows {
    int32_t user;
    int32_t item;
  };
  // Looks up (or adds) the event's user and item, given Hash() of each; grows per-row state,
  // except the model's.
  Rows Resolve(const stream::Event& event, uint64_t user_hash, uint64_t item_hash, bool* grew);
  // The update itself, for resolved rows (the model has been grown to include them).
  void ApplyResolved(Rows rows, const stream::Event& event);
  // The learner's own check of an event's numbers (see events_rejected()).
  bool Acceptable(const stream::Event& event) const;

  // Admission filter: true once `id` (hash) has occurred memory.admit_min_events times.
  bool Admit(uint64_t hash);
  void MaybeExpire(int64_t ts_ms);

  const std::string algorithm_;
  const config::Config config_;
  IdDictionary users_;
  IdDictionary items_;
  std::vector<UserHistory, HugePageAllocator<UserHistory>> histories_;
  Popularity popularity_;
  PopularityModel fallback_;  // answers users the learner has not seen
  std::unique_ptr<Model> model_;
  int64_t events_applied_ = 0;
  int64_t events_filtered_ = 0;
  int64_t events_rejected_ = 0;
  int64_t users_expired_ = 0;
  int64_t latest_ts_ms_ = 0;  // newest event time applied
  int64_t apply_clock_ns_ = 0;
  int64_t next_expiry_ms_ = 0;      // event time of the next TTL sweep
  std::vector<uint8_t> admission_;  // occurrence counters of not-yet-admitted ids, by hash
  DirtyRows dirty_users_;
  DirtyRows dirty_items_;
  std::vector<int32_t> erased_users_;
  bool globals_dirty_ = false;  // counters changed without any row (filtered events)
  int64_t popularity_rescales_ = 0;
  std::vector<std::string> loading_user_ids_;  // BeginLoad .. FinishLoad
  std::vector<std::string> loading_item_ids_;
  int32_t catalog_ = 0;  // items known as of the latest applied event (see Interaction::catalog)
  std::vector<Rows> batch_rows_;                             // scratch of ApplyBatch()
  std::vector<std::pair<uint64_t, uint64_t>> batch_hashes_;  // scratch: (user, item) id hashes

  // Replicas (learner/replicas.cc).
  struct ReplicaState {
    int width = 0;                 // ReplicatedItems::ReplicaItemWidth()
    bool joining = true;           // the next message joins the group
    bool catch_up_sender = false;  // this replica sends its table in the coming catch-up
    int32_t base_rows = 0;         // item rows [0, base_rows) have a base
    std::vector<float> base;       // base_rows x width: each row's value as of the last merge
    DirtyRows changed;             // item rows changed since the last TakeReplicaChanges()
  };
  // Encodes item rows into a replica message: kind (kReplica*), width, then each row's id, whether
  // it is new (with its start) and its change since the start.
  std::string EncodeReplicaRows(uint8_t kind, absl::Span<const int32_t> rows, bool as_new,
                                bool from_initial);
  std::unique_ptr<ReplicaState> replicas_;

  // Publishing and following (learner/follow.cc).
  struct PublishState {
    DirtyRows users;
    DirtyRows items;
    int64_t rescales = 0;  // popularity rescales as of the last TakePublishedChanges()
  };
  std::unique_ptr<PublishState> publish_;
  std::vector<std::string> followed_item_ids_;   // by row; empty: not received yet
  std::vector<int64_t> followed_item_versions_;  // by row
  int64_t followed_globals_version_ = 0;
  bool followed_ids_changed_ = false;  // rows not appended in order: rebuild items_
  std::string follow_scratch_;         // FollowItem(): the row's popularity before, kept to undo it
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_LEARNER_H_
