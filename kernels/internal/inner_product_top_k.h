// The blocked inner-product top-K driver behind TopKInnerProduct / TopKInnerProductBatch, with
// the instruction set selectable so tests and benchmarks can run every implementation compiled
// into the binary. Folder-private.
#ifndef FRESHET_KERNELS_INTERNAL_INNER_PRODUCT_TOP_K_H_
#define FRESHET_KERNELS_INTERNAL_INNER_PRODUCT_TOP_K_H_

#include <vector>

#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels::internal {

// Scoring kernel implementations. Every level returns bit-identical results; which ones exist
// depends on the build, and which can run on the processor (FAISS-style run-time dispatch).
enum class SimdLevel { kPortable, kAvx512 };

// True when `level` is compiled into this binary and this processor can run it (kPortable always).
bool SimdLevelCompiled(SimdLevel level);

// The fastest level this processor can run; what the public functions use.
SimdLevel BestSimdLevel();

// "portable", "avx512".
const char* SimdLevelName(SimdLevel level);

// TopKInnerProductBatch (topk.h) with the given implementation; same contract and preconditions.
// FRESHET_CHECK-fails when `level` is not compiled in.
void InnerProductTopK(SimdLevel level, const ItemMatrixView& items,
                      absl::Span<const TopKQuery> queries, int k,
                      absl::Span<std::vector<ScoredItem>> results);

}  // namespace freshet::kernels::internal

#endif  // FRESHET_KERNELS_INTERNAL_INNER_PRODUCT_TOP_K_H_
