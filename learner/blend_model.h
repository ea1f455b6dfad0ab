// BlendModel ("blend"): several component models learn side by side from every event, and a small
// ranker learnt online from the same stream combines their scores. The components (blend.features):
//
//   bpr          the bpr embedding model with its short-term part (learner/bpr_model.h)
//   cooc         symmetric co-occurrence within a session (learner/cooc_model.h, without its
//                popularity prior)
//   history      the same co-occurrence table scored over the user's whole recent history
//                (history.recent items, decayed by blend.history_decay per step): long-term taste
//   transitions  directed item -> next-item counts within a session: score(n) =
//                sum_k decay^k T(j_k, n) / (T(j_k) + 1) over the user's latest
//                blend.transition_window items j_k, newest first (an estimate of P(next | j))
//   popularity   log(1 + popularity), all-time (or popularity.half_life_s)
//   trending     log(1 + a count that halves every blend.trending_half_life events of the stream)
//   last         the co-occurrence table scored from the user's latest item alone
//   long_term    bpr's long-term user vector alone (its inner product with the item vectors), so
//                the mix can weigh a user's lasting taste apart from their latest items
//   profile      a second co-occurrence table, of every pair within a user's recent history
//                (history.recent items, across sessions, undecayed: what the same people consume,
//                days apart or not), scored over the user's recent history like `history`; an
//                event's n pairs each weigh its weight / n^blend.profile_user_exponent (0: its
//                weight), which above 0 keeps users with long histories from outweighing the
//                many with short ones
//   ials         the ials model (learner/ials_model.h) with its popularity prior: a second
//                embedding model, fitted by least squares to the user's recent items where bpr
//                steps on sampled pairs, so the two err differently
//   ease         EASE item-item weights (learner/ease.h) fitted in closed form to the profile
//                table over its blend.ease_items most counted items, every blend.ease_refit events
//                and when a state is loaded (the weights are not persisted), scored over the
//                user's recent history: pairs net of what the user's other items explain;
//                for users with a cold set (blend.cold_events) it weighs 0 and learns nothing
//                from their events, unless blend.ease_for_cold_users: a long-term profile model,
//                which misleads the ranker for users with a few events (on short anonymous
//                sessions it cost 9% of Recall@10)
//   topics       the popular items of the groups of the user's recent items (learner/topics.h):
//                blend.topics groups of items, cut by spectral clustering of a pair table like
//                the profile table over its blend.topics_items most counted items (the others
//                join their neighbours' groups) when ease is fitted, scored over the user's
//                recent history. Its table is the profile table's pairs counted otherwise: an
//                event's item with the user's latest n <= blend.topics_window (32) items, each
//                pair weighing 1 / n^blend.topics_user_exponent (1: an event adds 1 in all),
//                whatever the event's weight (blend.topics_unit_weights). Users with long
//                histories, or heavy event types, would otherwise decide the groups, where the
//                many users with a few events group items better (with the profile table's
//                settings, it is the profile table itself). Scored with blend.topics_prior
//                items' worth of popularity: on a sparse stream, a user's one earlier item names
//                a group whose popular items it was never counted beside; log-scaled like the
//                sparse components (blend.sparse_transform)
//
// The sparse components' scores (cooc, history, transitions, last, profile) and topics' become
// log(1 + x / mean of the positive x) (blend.sparse_transform = log: they are heavy-tailed) and
// enter the blend as they are; the others' are standardised over the catalog for the query (mean
// 0, variance 1). The blend's score is sum_f w_f z_f. (Divided by their standard deviation too,
// blend.sparse_scale = sd, a user's sparse scores grow as their lists get shorter: k items equal
// and the rest 0 stand sqrt(catalog / k) deviations high, so one earlier item with three pairs
// seen once each outweighs every other component, the more so the less the stream has said.)
// With blend.cold_events = N, a user with fewer than N earlier events is scored with w + v, where
// v is a second weight set (starting at 0) stepped only on such users' events: a user's first
// events follow popularity and short-term co-occurrence more than later ones do.
// The weights are learnt test-then-train, from the events a request could have been answered
// with: not a user's first (a user never seen is answered by popularity, Learner::Recommend, not
// by the blend), nor an item among the user's latest history.recent ones (a request excludes the
// items a user has; blend.learn_repeats to learn from those too). Before such an event
// is learnt, the ranker scores the catalog for the event's user as a request would (the user's
// latest items stand in for the seen items a request excludes) and takes one Adagrad step on the
// log-loss of the event's item under the softmax of the blend's scores over the catalog,
// -log(exp(s_true) / sum_i exp(s_i)), whose gradient E_p[z] - z_true compares the true item's
// features with every competitor's, each weighted by how highly the blend ranks it. (Pairwise
// steps against only the top-ranked competitors drive every weight towards zero: those items are
// top-ranked because they score high on the weighted features.) The ranker steps on each of the
// first blend.warmup_events events, then spends blend.train_cost item scorings per event, so the
// learning cost per event stays bounded; with blend.context_steps it also steps on every event of
// a user who takes the cold or the session-start set, outside that budget (those sets learn from
// such events alone: on a stream of established users they are few). A full step scores the whole
// catalog (blend.sample = 0: a step every catalog / train_cost events). A sampled step
// (blend.sample = m > 0) costs m: it scores the event's item and the best blend.sample_top items of
// each sparse component, which are certain, and m uniform draws from the catalog; the draws that
// are neither stand for the rest R of the catalog, each weighted |R| / (draws in R) in the softmax
// (the logQ correction of a uniform proposal), so its normaliser, and the gradient, are estimated
// without bias. The sparse components are scored over the catalog (sparse sums and a few cheap
// passes, so their mean and variance are exact); bpr, long_term, popularity and trending only at
// the candidates and draws, standardised by the draws' mean and variance.
//
// With blend.session_start, a user whose latest event is more than cooc.session_gap_s old (a
// returning user, or a new one) is scored with one more set added, stepped only on the events
// that start a session: someone back after days turns to what is new since more than to what
// they did last. A query's time is that of the latest event learnt, as the stream dates it.
//
// Cost per request: bpr's inner products over the catalog (O(items * dim); long_term another),
// the sparse co-occurrence and transition sums, topics' pass over the catalog and over the items
// of the user's groups, one pass per component to standardise, and top-K.
#ifndef FRESHET_LEARNER_BLEND_MODEL_H_
#define FRESHET_LEARNER_BLEND_MODEL_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "config/config.h"
#include "learner/bpr_model.h"
#include "learner/cooc_model.h"
#include "learner/ease.h"
#include "learner/ials_model.h"
#include "learner/model.h"
#include "learner/popularity.h"
#include "learner/sessions.h"
#include "learner/topics.h"

namespace freshet::learner {

// Not thread-safe (see Model).
class BlendModel : public Model {
 public:
  enum Feature {
    kBpr,
    kCooc,
    kHistory,
    kTransitions,
    kPopularity,
    kTrending,
    kLast,
    kLongTerm,
    kProfile,
    kIals,
    kEase,
    kTopics,
    kNumFeatures
  };
  static const char* FeatureName(Feature f);
  // The features named by blend.features; InvalidArgument for an unknown or repeated name, or
  // none.
  static absl::StatusOr<std::vector<Feature>> ParseFeatures(absl::string_view names);

  // `features` from ParseFeatures(); `popularity` and `backend` must outlive the model.
  BlendModel(const config::Config& config, std::vector<Feature> features,
             const Popularity* popularity, const kernels::Backend* backend);

  std::string name() const override { return "blend"; }
  void Grow(int32_t users, int32_t items) override;
  void Learn(const Interaction& event) override;
  void Prefetch(const Interaction& upcoming) const override;
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override;
  void ScoreAll(const UserQuery& query, absl::Span<float> scores) const override;

  // User rows: the bpr part, the cooc part and the session, each length-prefixed. Item rows: the
  // bpr and cooc parts, then the item's transitions and trending count; item row 0 also carries
  // the ranker (weights, Adagrad accumulators, steps), so it is marked changed with every step;
  // with the profile or ease component (or topics without a table of its own) the profile table's
  // part comes next, and when topics has a table of its own (config::BlendTopicsOwnTable), that
  // table's part. With the ials component, its user and item parts end the rows.
  // Decoding checks every part of a row before it decodes any, and refuses (DataLoss, the row left
  // as it was) what a part's own decoder refuses, a transition to a row that is not an item, and
  // a count, total, trending count or accumulator that is not finite and >= 0.
  void EncodeUser(int32_t row, std::string* out) const override;
  void EncodeItem(int32_t row, std::string* out) const override;
  absl::Status DecodeUser(int32_t row, absl::string_view in) override;
  absl::Status DecodeItem(int32_t row, absl::string_view in) override;
  // As DecodeItem(); the ials part's latest users need not be rows here (ials's own).
  absl::Status DecodeServedItem(int32_t row, absl::string_view in) override;
  // The trending clock follows the learner's (a serving replica); ease and topics are fitted to the
  // followed tables as often as the learner fits them, and again when rows of the round
  // they were fitted in arrive after the fit (deferred work when deferral is on).
  void FollowEvents(int64_t events, bool rows_followed) override;
  void FinishLoad(int32_t users, int32_t items, int64_t events) override;
  void ResetUser(int32_t row) override;
  // The ease and topics fit can be deferred (LearningModel): the event that reaches
  // blend.ease_refit marks it, and it is prepared from the tables as that event left it.
  void set_defer_work(bool on) override { defer_work_ = on; }
  int64_t LearnsBeforeDeferredWork() const override;
  bool DeferredWorkPending() const override { return fit_pending_catalog_ > 0; }
  std::unique_ptr<DeferredWork> PrepareDeferredWork() const override;
  void InstallDeferredWork(std::unique_ptr<DeferredWork> work) override;
  // Replicas cannot carry the blend: its cooc and transition tables and its ranker are not
  // parameters that merge by summing changes, so ReplicaItemWidth() stays 0.
  kernels::ItemMatrixView ItemVectors() const override { return bpr_.ItemVectors(); }
  const float* UserVector(int32_t row) const override { return bpr_.UserVector(row); }
  // The components' skips, and each ease fit refused for a non-finite solution (the earlier fit
  // kept). A topics fit refused keeps the earlier one too, uncounted: before two items are seen
  // together there is nothing to group.
  int64_t NonFiniteSkips() const override {
    return bpr_.NonFiniteSkips() + ials_.NonFiniteSkips() + fits_refused_;
  }
  int64_t BytesPerUser() const override;
  int64_t BytesPerItem() const override;
  void set_dirty_items(DirtyRows* dirty) override {
    Model::set_dirty_items(dirty);
    bpr_.set_dirty_items(dirty);
    cooc_.set_dirty_items(dirty);
    profile_.set_dirty_items(dirty);
    topics_table_.set_dirty_items(dirty);
    ials_.set_dirty_items(dirty);
  }

  // The ranker's weight of each feature, in the order of features(); with blend.cold_events a
  // second set follows, added to the first for users with fewer earlier events.
  const std::vector<Feature>& features() const { return features_; }
  const std::vector<float>& weights() const { return weights_; }
  int64_t ranker_steps() const { return ranker_steps_; }
  // Fits of ease and topics run (refused ones too), and those of them prepared as deferred work.
  int64_t fits() const { return fits_; }
  int64_t fits_deferred() const { return fits_deferred_; }

 private:
  bool Uses(Feature f) const { return uses_[f]; }
  bool UsesCooc() const { return uses_[kCooc] || uses_[kHistory] || uses_[kLast]; }
  bool UsesBpr() const { return uses_[kBpr] || uses_[kLongTerm]; }
  bool UsesProfileTable() const {
    return uses_[kProfile] || uses_[kEase] || (uses_[kTopics] && !own_topics_table_);
  }
  // The table topics is fitted to: its own (config::BlendTopicsOwnTable) or the profile table.
  const CoocModel& TopicsTable() const { return own_topics_table_ ? topics_table_ : profile_; }
  // The components fitted now and then to their tables (blend.ease_refit).
  bool UsesFits() const { return uses_[kEase] || uses_[kTopics]; }
  // Fits ease and topics over rows [0, catalog) of their tables (blend.ease_*, blend.topics*).
  void FitComponents(int32_t catalog);
  // A fit over `catalog` rows fell due: marked as deferred work when deferral is on, else done.
  void FitDue(int32_t catalog);
  struct ComponentFits;
  // Which weight sets apply to a query or an event (blend.cold_events, blend.session_start).
  struct Context {
    bool cold = false;
    bool start = false;
  };
  Context QueryContext(const UserQuery& query) const;
  Context EventContext(const Interaction& event) const;
  // Whether feature f is ease for a cold user without blend.ease_for_cold_users: ease reads a
  // user's history as a long-term profile, so for them it weighs 0 and learns nothing.
  bool EaseOff(Context context, size_t f) const {
    return context.cold && !config_.blend_ease_for_cold_users && features_[f] == kEase;
  }
  // Standardised scores of every enabled feature for the query over rows [0, catalog):
  // (*z)[f * catalog + i]; and their blend into `scores` (catalog floats).
  void Score(const UserQuery& query, Context context, int32_t catalog, std::vector<float>* z,
             absl::Span<float> scores) const;
  // One feature's raw scores over rows [0, out.size()).
  void RawScores(Feature f, const UserQuery& query, absl::Span<float> out) const;
  // Whether the event is one the ranker learns from: a ranking the blend would be asked for (the
  // class comment).
  bool RankerLearnsFrom(const Interaction& event) const;
  // Whether the ranker steps on the coming event, a step costing `cost` item scorings (the
  // schedule in the class comment).
  bool RankerDue(const Interaction& event, int32_t cost);
  void RankerStep(const Interaction& event);
  // A checked item row, pointing into its value: the parts, the n transitions (packed (item,
  // count) pairs), the trending count and, in row 0, the ranker.
  struct ItemRow {
    absl::string_view bpr, cooc, profile, topics, ials;
    float total = 0;
    uint64_t n = 0;
    const char* pairs = nullptr;
    float trend = 0;
    int64_t trend_at = 0;
    float weights[3 * kNumFeatures] = {};  // and the cold and session-start sets'
    float accumulators[3 * kNumFeatures] = {};
    int64_t ranker_steps = 0;
  };
  // `served`: the row of a serving replica (DecodeServedItem()).
  absl::Status ParseItem(int32_t row, absl::string_view in, bool served, ItemRow* out) const;
  absl::Status DecodeItem(int32_t row, absl::string_view in, bool served);
  // A step on a sample of the catalog (blend.sample > 0, see the class comment).
  void SampledRankerStep(const Interaction& event);
  // Whether a user with these latest items takes the cold weight set too.
  bool Cold(absl::Span<const int32_t> recent) const {
    return static_cast<int>(recent.size()) < config_.blend_cold_events;
  }
  // The first weight of the cold and the session-start set in weights_ (0: no such set).
  size_t ColdSet() const { return config_.blend_cold_events > 0 ? features_.size() : 0; }
  size_t StartSet() const {
    return config_.blend_session_start ? features_.size() * (config_.blend_cold_events > 0 ? 2 : 1)
                                       : 0;
  }
  // The weight of each feature in that context.
  void EffectiveWeights(Context context, float* out) const;
  bool Sparse(Feature f) const {
    return f == kCooc || f == kHistory || f == kTransitions || f == kLast || f == kProfile;
  }
  // Whether f's scores enter the blend without division by their standard deviation over the
  // catalog (blend.sparse_scale = none: the sparse components and topics).
  bool Unscaled(Feature f) const;
  // Adds a sparse feature's raw scores of rows [0, acc.size()) to `acc`, all 0 on entry, and
  // appends the rows it made non-zero to `touched`, each once: O(the lists it reads), not
  // O(catalog), in one pass over them.
  void SparseRawScores(Feature f, absl::Span<const int32_t> recent, absl::Span<float> acc,
                       std::vector<int32_t>* touched) const;
  // log(1 + x / the mean of the positive x) of the positive x (blend.sparse_transform = log).
  static void LogScale(absl::Span<float> out);
  // Raw scores with blend.sparse_transform applied (to the sparse components and topics).
  void FeatureScores(Feature f, const UserQuery& query, absl::Span<float> out) const;
  // Adagrad on the log-loss gradient `grad_in` (one per feature) of a user, cold or not.
  void Update(const std::vector<float>& grad_in, Context context);
  void LearnTransitions(const Interaction& event, int session);
  // The trending count of `item` as of now.
  float Trending(int32_t item) const;

  const config::Config config_;
  const std::vector<Feature> features_;
  bool uses_[kNumFeatures] = {};
  const bool own_topics_table_;  // config::BlendTopicsOwnTable
  const Popularity* popularity_;
  const kernels::Backend* backend_;
  BprModel bpr_;
  CoocModel cooc_;
  CoocModel profile_;       // the profile component's table
  CoocModel topics_table_;  // topics' own table, when own_topics_table_ (else empty)
  IalsModel ials_;          // the ials component
  Ease ease_;               // the ease component, fitted to profile_
  Topics topics_;           // the topics component, fitted to TopicsTable() with ease
  int64_t fit_at_ = 0;
  int64_t fits_refused_ = 0;  // ease's (see NonFiniteSkips())
  int64_t fits_ = 0;
  int64_t fits_deferred_ = 0;
  bool defer_work_ = false;
  // The catalog of a deferred fit due but not installed (0: none pending).
  int32_t fit_pending_catalog_ = 0;
  std::vector<float> ease_scores_;    // sampled steps: ease at its fitted items, else 0
  std::vector<float> topics_scores_;  // sampled steps: topics over the catalog
  Sessions sessions_;
  int32_t items_ = 0;
  int64_t clock_ = 0;   // events learnt (the trending clock)
  int64_t now_ms_ = 0;  // the time of the latest event learnt, or loaded (a query's time)

  // Transitions: next_[j][n] = decayed count of n right after j in a session; out_[j] its sum.
  // out_ sums every transition out of j, so it accumulates in double: a float stops growing at
  // 2^24 (adding 1 changes nothing), which a popular item's total reaches within days of a busy
  // stream. Scored and persisted as a float (within 1 part in 2^24 of the sum), so a loaded state
  // and a serving replica score as the learner does.
  std::vector<absl::flat_hash_map<int32_t, float>> next_;
  std::vector<double> out_;
  int64_t transition_pairs_ = 0;
  // Trending: trend_[i] as of event trend_at_[i].
  std::vector<float> trend_;
  std::vector<int64_t> trend_at_;

  // The ranker.
  std::vector<float> weights_, accumulators_;
  int64_t ranker_steps_ = 0;
  int64_t budget_ = 0;  // item scorings saved up for the next step
  std::vector<float> z_, scores_;
  std::vector<int32_t> exclude_;
  // Sampled steps: the candidates, their importance weights, their standardised features.
  Rng rng_{0x626c656e64};
  std::vector<int32_t> candidates_, draws_, touched_;
  std::vector<float> importance_, candidate_z_;
  // 1 at the rows of the step's certain candidates; all 0 between steps.
  std::vector<uint8_t> chosen_;
  // Per feature: a sparse feature's scores, zero outside the rows listed beside them.
  std::vector<std::vector<float>> sparse_;
  std::vector<std::vector<int32_t>> sparse_rows_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_BLEND_MODEL_H_
