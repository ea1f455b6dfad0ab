// EmbeddingTable: a growable matrix of float rows, 64-byte aligned and padded so every row starts
// on a cache line (what the SIMD kernels expect), with one row-wise Adagrad accumulator per row.
#ifndef FRESHET_LEARNER_EMBEDDING_TABLE_H_
#define FRESHET_LEARNER_EMBEDDING_TABLE_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/random.h"
#include "kernels/backend.h"

namespace freshet::learner {

// Not thread-safe. Growing may move the storage: pointers from Row() are valid until the next
// Resize().
class EmbeddingTable {
 public:
  explicit EmbeddingTable(int dim);

  int dim() const { return dim_; }
  int64_t stride() const { return stride_; }  // floats between row starts (dim rounded up to 16)
  int64_t rows() const { return rows_; }

  // Grows to `rows` rows; new rows get N(0, init_std^2) entries (zeros if init_std is 0) and a
  // zero Adagrad accumulator. Row r's initial values depend only on (seed, r), not on how the
  // table grew, so batching never changes results. Shrinking is not supported (no-op).
  void Resize(int64_t rows, float init_std, uint64_t seed);
  // The `dim` values Resize() gives row `row` (the padding is not written).
  static void InitialRow(int64_t row, int dim, float init_std, uint64_t seed, float* out);

  float* Row(int64_t row) { return data_.get() + row * stride_; }
  const float* Row(int64_t row) const { return data_.get() + row * stride_; }
  float& Accumulator(int64_t row) { return adagrad_[row]; }
  const float* AccumulatorAddress(int64_t row) const { return &adagrad_[row]; }

  // A view for the top-K kernels (no bias).
  kernels::ItemMatrixView View(const float* bias = nullptr) const {
    return kernels::ItemMatrixView{data_.get(), bias, rows_, dim_, stride_};
  }

 private:
  struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
  };

  int dim_;
  int64_t stride_;
  int64_t rows_ = 0;
  int64_t capacity_ = 0;
  std::unique_ptr<float[], FreeDeleter> data_;
  std::vector<float> adagrad_;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_EMBEDDING_TABLE_H_
