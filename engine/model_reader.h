// ModelReader: the read-only view of the live model that the serving tier answers from.
//
// Thread safety: every method may be called from any thread at any time, also while the model
// learns; none waits on storage, a source or a broker (only, briefly, on the learner's lock,
// which the ingest loop holds for at most LiveModel::kApplySlice events, or about
// LiveModel::kApplyHoldNs of learning, at a time, and direct events with ids for one request
// body).
#ifndef FRESHET_ENGINE_MODEL_READER_H_
#define FRESHET_ENGINE_MODEL_READER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace freshet::engine {

// A user's freshness, as the API reports it.
struct UserInfo {
  bool known = false;
  int64_t events = 0;          // events applied for the user
  int64_t last_event_ts = 0;   // event time of the latest, epoch ms
  double applied_ms_ago = -1;  // wall time since the latest was applied here; -1: not here
  // The items of the user's latest events, newest first, at most kRecentShown (User() only).
  std::vector<std::string> recent;
  static constexpr int kRecentShown = 20;
};

// One recommended or similar item, by external id.
struct ScoredId {
  std::string item;
  float score = 0;
};

// An answer to a recommendation request, with the freshness the API reports.
struct RecommendResult {
  std::vector<ScoredId> items;
  bool personalized = false;  // false: popularity (unknown user)
  // On a serving replica, where the user's state came from: "redis" (read for this request),
  // "cache" (Redis unreachable: the replica's last copy) or "none" (popularity). Empty elsewhere.
  std::string user_state;
  UserInfo user;
  int64_t model_version = 0;
};

// What the model is and where it runs, for /metrics (fixed for the process).
struct ModelInfo {
  std::string algorithm;
  std::string backend;   // kernels::Backend::Name()
  std::string learning;  // where the model learns (Model::Learning())
};

// Counters of the live model.
struct ModelStats {
  int64_t events_applied = 0;
  int64_t events_filtered = 0;  // admission filter
  int64_t events_rejected = 0;  // refused by the learner's own check
  int64_t nonfinite_skips = 0;  // model updates skipped as non-finite
  int64_t users = 0;
  int64_t items = 0;
  int64_t device_fallbacks = 0;  // micro-batches the device failed and the host learnt
  int64_t scoring_batches = 0;   // batched top-K passes over the items
  int64_t scoring_queries = 0;   // recommendation queries answered by them
  // Groups of 64 item rows (re-)packed for batched scoring (serve.packed_items): about the rows
  // learning changed between batches, not the catalogue once per batch.
  int64_t scoring_groups_packed = 0;
  double last_applied_ago_s = -1;  // wall time since an event was last applied; -1 none yet
  int64_t model_version = 0;
};

class ModelReader {
 public:
  virtual ~ModelReader() = default;

  // Top-k for `user` with freshness, leaving out hidden items and `exclude_items` (external ids;
  // unknown ones are ignored), answered through `done` (called once, on the thread that scores the
  // batch or the caller's): with serve.batch_scoring, inner-product queries of concurrent requests
  // are scored together in one pass over the items. A caller inside a BurstEnd scope
  // (common/burst_end.h) gets its answers when its scope ends, scored on its own thread with the
  // rest of its burst; any other caller's thread is not held meanwhile.
  using RecommendDone = std::function<void(absl::StatusOr<RecommendResult>)>;
  virtual void RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                              const std::vector<std::string>& exclude_items,
                              RecommendDone done) const = 0;
  // RecommendAsync, waited for.
  absl::Status RecommendFor(absl::string_view user, int k, bool exclude_seen,
                            const std::vector<std::string>& exclude_items,
                            RecommendResult* out) const;
  // Items similar to `item` (Learner::Similar), hidden items left out.
  virtual absl::Status SimilarTo(absl::string_view item, int k,
                                 std::vector<ScoredId>* out) const = 0;
  virtual UserInfo User(absl::string_view user) const = 0;
  virtual std::vector<std::string> HiddenItems() const = 0;
  // The model version answers report: with a data directory the latest batch of learnt state
  // queued for storage, without one the number of learning rounds; an atomic read.
  virtual int64_t model_version() const = 0;
  virtual ModelInfo info() const = 0;
  virtual ModelStats stats() const = 0;
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_MODEL_READER_H_
