// Packed layouts and the per-instruction-set scoring kernels behind InnerProductTopK.
// Folder-private: only kernels/ and its tests include this.
//
// Every kernel gives each vector lane one item and walks the dimensions in order, so a lane
// computes exactly the score contract's multiply-add chain (topk.h) while one instruction
// advances 16 items (AVX-512). Row-major items therefore have to be transposed; a batch does it
// once per block into the packed layout below and reuses it for every query.
//
// Layouts (all float, 64-byte aligned):
//  - Item block: rows [first_row, first_row + rows) of the item matrix, transposed in groups of
//    kGroupItems rows: group g holds dim x kGroupItems floats, element (row first_row + 64g + l,
//    dim c) at g * dim * 64 + c * 64 + l. Rows past the end of the block are zero.
//  - Queries: groups of kQueryGroup queries (the last may be smaller), group h at
//    h * kQueryGroup * dim, element (query j of the group, dim c) at c * group_size + j, so the
//    kernel broadcasts each query value from one running pointer. A single query's packed form
//    is its vector.
#ifndef FRESHET_KERNELS_INTERNAL_ITEM_PANELS_H_
#define FRESHET_KERNELS_INTERNAL_ITEM_PANELS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "absl/types/span.h"
#include "kernels/backend.h"
#include "kernels/internal/top_k_selector.h"

namespace freshet::kernels::internal {

// Items per transposed group: four AVX-512 registers of 16 lanes.
inline constexpr int kGroupItems = 64;
// Queries scored together against one item group: 4 x 6 = 24 accumulator registers of the 32.
inline constexpr int kQueryGroup = 6;

// Items per packed block: the largest multiple of kGroupItems whose packed copy fits in about
// 32 KiB, so it stays in L1 while every query group is scored against it.
int64_t ItemBlockRows(int dim);

// Scratch memory aligned to a cache line (and an AVX-512 register).
struct AlignedFloatsDeleter {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFloatsDeleter>;
inline AlignedFloats MakeAlignedFloats(size_t n) {
  return AlignedFloats(new (std::align_val_t{64}) float[n]);
}

// Packs every query's vector into the query layout above (queries.size() * dim floats).
void PackQueries(absl::Span<const TopKQuery> queries, int dim, float* out);

// A packed item block and the rows it holds.
struct PackedItemBlock {
  const float* data = nullptr;
  const float* bias = nullptr;  // bias of first_row (the view's bias + first_row), or null
  int64_t first_row = 0;
  int64_t rows = 0;
  int dim = 0;
};

// The packed queries of one call and their selectors (selectors[q] for query q).
struct PackedQueryBatch {
  const float* data = nullptr;
  int64_t count = 0;
  int dim = 0;
  TopKSelector* selectors = nullptr;
};

// Floats of scratch that ScoreRows* need for a block of `rows` rows: RoundUp(rows, 64) * dim.
int64_t ScratchFloats(int64_t rows, int dim);

// ScoreRows*: scores rows [first_row, first_row + rows) of `items` for every query in `queries`
// by the score contract (topk.h) and offers each query's candidates to its selector, in
// increasing row order. `scratch` (ScratchFloats(rows, dim) floats, 64-byte aligned) receives the
// packed item block when the implementation packs.
//
// Portable C++; compiled on every target.
void ScoreRowsPortable(const ItemMatrixView& items, int64_t first_row, int64_t rows,
                       const PackedQueryBatch& queries, float* scratch);

// AVX-512F; bit-identical results. Compiled into every x86-64 build whose baseline has FMA (the
// portable kernels then fuse their multiply-adds too, so both follow the same contract) with the
// instruction set enabled for these functions only; called only on processors that have it
// (inner_product_top_k.cc asks the CPU at run time).
#if defined(__x86_64__) && defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
#define FRESHET_AVX512_KERNELS 1
inline constexpr bool kAvx512Compiled = true;
#else
#define FRESHET_AVX512_KERNELS 0
inline constexpr bool kAvx512Compiled = false;
#endif
void ScoreRowsAvx512(const ItemMatrixView& items, int64_t first_row, int64_t rows,
                     const PackedQueryBatch& queries, float* scratch);

// For a packed copy kept between calls (kernels/packed_items.h):
// PackItemRows*: packs rows [first_row, first_row + rows) of `items` into the item-block layout
// at `out` (ScratchFloats(rows, dim) floats, 64-byte aligned; rows past the end are zero).
// ScorePacked*: scores an already packed block for every query, as ScoreRows* does after packing;
// `next` (possibly empty) is what the following call will read, prefetched meanwhile.
void PackItemRowsPortable(const ItemMatrixView& items, int64_t first_row, int64_t rows, float* out);
void ScorePackedPortable(const PackedItemBlock& block, const PackedQueryBatch& queries);
void PackItemRowsAvx512(const ItemMatrixView& items, int64_t first_row, int64_t rows, float* out);
void ScorePackedAvx512(const PackedItemBlock& block, const PackedQueryBatch& queries,
                       absl::Span<const float> next);

// ScoreListedRowsAvx512: scores the listed rows (increasing, each in [0, items.rows)) of `items`
// for one query by the score contract and offers them to `selector` in order (the exact second
// stage of kernels/packed_items.h).
void ScoreListedRowsAvx512(const ItemMatrixView& items, absl::Span<const int32_t> rows,
                           const float* query, TopKSelector& selector);

}  // namespace freshet::kernels::internal

#endif  // FRESHET_KERNELS_INTERNAL_ITEM_PANELS_H_
