// BprModel ("bpr"): online embedding model trained by SGD with row-wise Adagrad on a sampled
// softmax (logQ-corrected) or pairwise BPR loss, negatives drawn by popularity^alpha.
//
// The user side has a long-term vector p_u and a short-term part built from the user's latest
// items: query(u) = a * p_u + b * sum_k w_k c_{j_k} / sum_k w_k over the last `window` items j_k
// (w_k = decay^k, newest first). Score(u, i) = query(u) . q_i + bias_i.
// With bpr.tied_context (the default) c_j is the item's own embedding q_j, read only: each update
// pulls the positive item towards the items that preceded it, so the item embeddings learn
// item-to-next-item structure. Without it c_j is a separate context embedding trained on every
// event (a factorised Markov chain, as in FPMC), at the cost of writing those rows too.
//
// Replay (bpr.replay = n > 0, host learning only): after each event, n more steps on events
// drawn from the latest 65,536, for their items (vectors, biases) and not their users: a second
// look at recent events that a single pass of SGD underfits. Not persisted; it refills.
//
// Micro-batched learning (a GPU, or kernels.micro_batch > 0): Learn() samples the negatives and
// the logQ terms on the host exactly as above and queues the event; every kernels.micro_batch
// events, and on Flush(), a BprTrainer (learner/trainers/) learns the queue in one step (semantics:
// kernels/cuda/learn_batch.h; gradients from the state before the batch, one Adagrad step per
// distinct row) and copies the changed rows back, so the host tables stay a complete mirror.
// Needs the softmax loss and tied context.
#ifndef FRESHET_LEARNER_BPR_MODEL_H_
#define FRESHET_LEARNER_BPR_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/random.h"
#include "config/config.h"
#include "learner/embedding_table.h"
#include "learner/model.h"
#include "learner/negative_sampler.h"
#include "learner/popularity.h"
#include "learner/trainers/bpr_trainer.h"

namespace freshet::learner {

// Not thread-safe (see Model).
class BprModel : public Model {
 public:
  // `popularity` and `backend` must outlive the model.
  BprModel(const config::Config& config, const Popularity* popularity,
           const kernels::Backend* backend);

  // Chooses how to learn: micro-batches on the trainer `make_trainer` makes for the backend where
  // it makes one (NewBprTrainer: the GPU), on the reference trainer when kernels.micro_batch > 0
  // and the backend has none (the CPU), else event by event. InvalidArgument when micro-batching
  // is asked for with bpr.loss = bpr or untied context; the factory's error when the backend's
  // trainer cannot be made.
  absl::Status InitLearning(BprTrainerFactory make_trainer);

  std::string name() const override { return "bpr"; }
  void Grow(int32_t users, int32_t items) override;
  void Learn(const Interaction& event) override;
  void Flush() override;
  void Prefetch(const Interaction& upcoming) const override;
  absl::Status Recommend(const UserQuery& query, int k,
                         std::vector<kernels::ScoredItem>* out) const override;
  void ScoreAll(const UserQuery& query, absl::Span<float> scores) const override;

  void EncodeUser(int32_t row, std::string* out) const override;
  void EncodeItem(int32_t row, std::string* out) const override;
  // Decoding refuses (DataLoss, the row unchanged) a value of the wrong size, a NaN or an infinity
  // anywhere, and a negative Adagrad accumulator.
  absl::Status DecodeUser(int32_t row, absl::string_view in) override;
  absl::Status DecodeItem(int32_t row, absl::string_view in) override;
  // What DecodeUser()/DecodeItem() would answer, without writing anything: composite models check
  // every part of a row before they decode any.
  absl::Status CheckUser(int32_t row, absl::string_view in) const;
  absl::Status CheckItem(int32_t row, absl::string_view in) const;
  void FinishLoad(int32_t users, int32_t items, int64_t events) override;
  void ResetUser(int32_t row) override;
  kernels::ItemMatrixView ItemVectors() const override { return items_.View(bias_.data()); }
  bool QueryVector(const UserQuery& query, std::vector<float>* out) const override {
    *out = QueryVectorFor(query);
    return true;
  }
  kernels::ItemMatrixView ScoringMatrix() const override { return items_.View(bias_.data()); }
  absl::Status TopKBatch(const kernels::Backend& backend,
                         absl::Span<const kernels::TopKQuery> queries, int k,
                         absl::Span<std::vector<kernels::ScoredItem>> results) const override;
  std::string Learning() const override { return trainer_ ? trainer_->Name() : "host"; }
  int64_t DeviceFallbacks() const override { return device_fallbacks_; }
  int64_t NonFiniteSkips() const override { return nonfinite_skips_; }
  const float* UserVector(int32_t row) const override { return users_.Row(row); }
  // Replicated: the item vector, the bias and their Adagrad accumulators (summed like the
  // parameters, so steps shrink with every replica's updates, as they would in one learner), and
  // with untied context the context vector and its accumulator.
  int ReplicaItemWidth() const override {
    return dim_ + 3 + (config_.bpr_tied_context ? 0 : dim_ + 1);
  }
  void ReadReplicaItem(int32_t row, bool initial, float* out) const override;
  absl::Status CheckReplicaItem(const float* in) const override;
  void WriteReplicaItem(int32_t row, const float* in) override;
  void ReplicaWritesDone() override;
  int64_t BytesPerUser() const override;
  int64_t BytesPerItem() const override;

 private:
  // Writes query(u) into `out` (stride floats) and the per-item context weights, newest first,
  // into `weights` (already divided by their sum and multiplied by the short-term weight).
  void QueryVector(int32_t user, absl::Span<const int32_t> recent, float* out,
                   std::vector<float>* weights) const;
  // The weights of the latest n items in the short-term vector, newest first (already divided by
  // their sum and multiplied by the short-term weight).
  void ContextWeights(int n, std::vector<float>* weights) const;
  // query(u) for a recommendation request, in a fresh buffer (the const query paths leave
  // Learn()'s scratch alone).
  std::vector<float> QueryVectorFor(const UserQuery& query) const;
  // The embedding of a recent item in the short-term vector: its context row, or with
  // bpr.tied_context its item row.
  const float* ContextRow(int32_t item) const {
    return config_.bpr_tied_context ? items_.Row(item) : context_.Row(item);
  }
  // One row-wise Adagrad step for a row whose loss gradient is coeff * direction, where
  // `direction_sq_norm` = |direction|^2: acc += mean(gradient^2), then
  // row = (1 - step * l2) * row - step * coeff * direction with step = lr / sqrt(acc). Weight
  // decay is decoupled from the accumulator, so the norm is computed once per direction, not per
  // row, and each row is updated in one pass.
  void AdagradStep(float* row, float& accumulator, float coeff, const float* direction,
                   float direction_sq_norm) const;
  // The next negative. Negatives are drawn ahead through a small pipeline so that the sampler's
  // table slot and then the item's rows are in cache when used; the sequence of negatives depends
  // only on the seed and the sequence of events, not on batching.
  int32_t NextNegative();
  // Prefetches everything Learn() reads for an item candidate.
  void PrefetchItem(int32_t item) const;
  // Learn() on the host for one event; with update_user false the user's row is left alone.
  void LearnEvent(const Interaction& event, bool update_user);
  // Micro-batched Learn(): queues the event with its negatives, logQ terms and context.
  void Enqueue(const Interaction& event);
  // Uploads the rows the host wrote since the trainer last saw them (new, loaded, reset or
  // merged rows); on an error they stay listed for the next try.
  absl::Status UploadPending(const kernels::BprTables& host);
  // The host tables as the trainers see them.
  kernels::BprTables HostTables();
  // Learns the queued batch on the host (ReferenceBprBatch on the host tables): the fallback
  // when the trainer fails.
  void LearnOnHost(const kernels::BprBatch& batch, const kernels::BprParams& params);

  const config::Config config_;
  const Popularity* popularity_;
  const kernels::Backend* backend_;
  const int dim_;
  const int stride_;  // dim rounded up to 16, as in EmbeddingTable
  const bool softmax_;
  EmbeddingTable users_;
  EmbeddingTable context_;
  EmbeddingTable items_;
  std::vector<float> bias_;
  std::vector<float> bias_accumulator_;
  NegativeSampler sampler_;
  Rng sample_rng_;                       // negatives
  const float log_negatives_;            // log(bpr.negatives), part of the logQ correction
  std::vector<uint32_t> draw_queue_;     // raw draws whose table slots are being fetched
  std::vector<int32_t> negative_queue_;  // resolved negatives whose rows are being fetched
  size_t queue_head_ = 0;

  // Replay (bpr.replay): the latest events, a ring once full.
  static constexpr size_t kReplayEvents = 65536;
  static constexpr int kReplayWindow = 8;
  struct ReplayEvent {
    int32_t user, item;
    float weight;
    int32_t recent_size;
    int32_t recent[kReplayWindow];
  };
  std::vector<ReplayEvent> replay_;
  size_t replay_next_ = 0;
  std::vector<size_t> replay_due_;  // replayed at the next event (drawn ahead, rows prefetched)
  Rng replay_rng_;

  // Scratch for Learn(), sized once.
  std::vector<float> query_, grad_query_;
  std::vector<float> weights_;
  std::vector<int32_t> candidates_;
  std::vector<float> logits_, coeff_;

  // Micro-batched learning (InitLearning); trainer_ is null when learning event by event.
  std::unique_ptr<BprTrainer> trainer_;
  int micro_batch_ = 0;
  struct Queue {
    std::vector<int32_t> users, positives, negatives, context;
    std::vector<float> log_q, weights, context_weights;
  } queue_;
  int64_t trainer_users_ = 0;  // rows [0, trainer_users_) were uploaded to the trainer
  int64_t trainer_items_ = 0;
  std::vector<int32_t> upload_users_, upload_items_;  // rows rewritten on the host since
  int64_t device_fallbacks_ = 0;
  int64_t nonfinite_skips_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_BPR_MODEL_H_
