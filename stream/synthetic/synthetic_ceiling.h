// The best Recall@K any model can reach on a synthetic stream: each event's item ranked by the
// distribution the generator drew it from (SyntheticStream::NextItemDistribution), under the
// replay protocol of `freshet replay` (ARCHITECTURE.md, "Evaluation protocol"): an event is ranked
// when its item is already in the catalog (some earlier event had it) and its user has not had it
// before; the candidates are the catalog's items the user has not had; K items are taken.
//
// Ranking by the true next-item probabilities maximises the expected hits of every event, so no
// model, however it learns, has a higher expected Recall@K on the stream: a model's figure over
// this one says how much of what is learnable it learnt. The ceiling knows the users' current
// tastes and the planted successors, which a model can only estimate from the events before.
#ifndef FRESHET_STREAM_SYNTHETIC_SYNTHETIC_CEILING_H_
#define FRESHET_STREAM_SYNTHETIC_SYNTHETIC_CEILING_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "stream/synthetic/synthetic_stream.h"

namespace freshet::stream {

struct SyntheticCeiling {
  int k = 0;
  int64_t events = 0;
  int64_t evaluated = 0;  // ranked events
  double recall = 0;      // hits / evaluated
  double ndcg = 0;        // mean of 1 / log2(rank + 1), misses 0
  // The same split as replay's: events a user made before this one fewer than `early_events`.
  int early_events = 0;
  int64_t early_evaluated = 0;
  double early_recall = 0;
  int64_t later_evaluated = 0;
  double later_recall = 0;
};

// Generates SyntheticStream(options) (the same events `freshet generate` writes for them) and
// ranks every event as above. InvalidArgument for bad options or k < 1. Costs O(items) per ranked
// event and O(users + items + events) memory (each user's items).
absl::StatusOr<SyntheticCeiling> MeasureSyntheticCeiling(const SyntheticStreamOptions& options,
                                                         int k = 10, int early_events = 5);

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_SYNTHETIC_SYNTHETIC_CEILING_H_
