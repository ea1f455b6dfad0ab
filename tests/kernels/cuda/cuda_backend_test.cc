// CudaBackend against the CPU backend on the same seeded data (the faiss TestGpuIndexFlat
// pattern). Scores come from a GEMM that sums in another order than the CPU's score contract, so
// they are compared within kTol, and near-ties at the k-th place may swap. The error-path tests
// run without a device; the parity tests skip without one.
#include "kernels/cuda/cuda_backend.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu_backend.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/internal/cublas_loader.h"
#include "kernels/topk.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace freshet::kernels {
namespace {

using ::testing::HasSubstr;
using testing_util::ExpectSameTopK;
using testing_util::OwnedItems;
using testing_util::RandomExclude;
using testing_util::RandomItems;
using testing_util::RandomVector;

// Vectors in [-1, 1), dim <= 128: |score| <= 128 + bias, float GEMM error well below 1e-4.
constexpr float kTol = 2e-4f;

TEST(CudaBackendErrorTest, WithoutADeviceCreationIsUnavailableWithTheReason) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateCudaBackend();
  if (backend.ok()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kUnavailable) << backend.status();
  EXPECT_THAT(std::string(backend.status().message()), HasSubstr("no usable CUDA device"));
  // The registry passes the same status through; "auto" falls back to the CPU and says why.
  absl::StatusOr<std::unique_ptr<Backend>> by_name = CreateBackend("cuda");
  ASSERT_FALSE(by_name.ok());
  EXPECT_EQ(by_name.status(), backend.status());
  std::string note;
  absl::StatusOr<std::unique_ptr<Backend>> chosen = CreateBackend("auto", &note);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ((*chosen)->Name(), "cpu");
  EXPECT_THAT(note, HasSubstr("no usable CUDA device"));
  // The lower layers agree.
  EXPECT_EQ(CudaDeviceCount().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CudaContext::Create(0).status().code(), absl::StatusCode::kUnavailable);
}

TEST(CudaBackendErrorTest, AMissingDeviceIndexIsUnavailable) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(4096);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kUnavailable) << backend.status();
}

// cuBLAS is loaded with dlopen when the first context is made; the library and every symbol used
// must resolve on any machine with the toolkit, device or not.
TEST(CudaBackendErrorTest, CublasLoadsOnDemand) {
  absl::StatusOr<const cuda_internal::CublasApi*> api = cuda_internal::LoadCublas();
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_NE((*api)->sgemm, nullptr);
  EXPECT_STREQ((*api)->status_name(CUBLAS_STATUS_ALLOC_FAILED), "CUBLAS_STATUS_ALLOC_FAILED");
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_ALLOC_FAILED, "x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CudaStatus(cudaErrorMemoryAllocation, "x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CudaStatus(cudaErrorNoDevice, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(CudaStatus(cudaSuccess, "x").ok());
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
    if (!backend.ok()) GTEST_SKIP() << "no CUDA device: " << backend.status();
    backend_ = std::move(*backend);
  }

  // Runs `num_queries` queries (every third with an exclude list) on both backends and compares.
  void CheckParity(const OwnedItems& items, int num_queries, int k, uint64_t seed) {
    std::vector<std::vector<float>> vectors;
    std::vector<std::vector<int32_t>> excludes;
    std::vector<TopKQuery> queries;
    for (int q = 0; q < num_queries; ++q) {
      vectors.push_back(RandomVector(items.view.dim, seed * 1000 + q));
      excludes.push_back(
          q % 3 == 0
              ? RandomExclude(40, -2, static_cast<int32_t>(items.view.rows) + 2, seed * 7 + q)
              : std::vector<int32_t>{});
    }
    for (int q = 0; q < num_queries; ++q) queries.push_back({vectors[q].data(), excludes[q]});
    std::vector<std::vector<ScoredItem>> cpu(queries.size()), gpu(queries.size());
    ASSERT_TRUE(cpu_.TopK(items.view, queries, k, absl::MakeSpan(cpu)).ok());
    const absl::Status status = backend_->TopK(items.view, queries, k, absl::MakeSpan(gpu));
    ASSERT_TRUE(status.ok()) << status;
    for (int q = 0; q < num_queries; ++q) {
      ExpectSameTopK(
          gpu[q], cpu[q], excludes[q], kTol,
          [&](int32_t item) { return ReferenceScore(items.view, vectors[q].data(), item); },
          absl::StrCat("rows ", items.view.rows, " k ", k, " query ", q));
    }
  }

  CpuBackend cpu_;
  std::unique_ptr<CudaBackend> backend_;
};

TEST_F(CudaBackendTest, NameIsCuda) {
  EXPECT_EQ(backend_->Name(), "cuda");
  EXPECT_THAT(backend_->Description(), HasSubstr("sm_"));
}

TEST_F(CudaBackendTest, TopKMatchesCpuForBatchesOf1And64And1024) {
  const OwnedItems items = RandomItems(5000, 64, 64, /*with_bias=*/true, 11);
  for (const int batch : {1, 64, 1024}) CheckParity(items, batch, 20, 100 + batch);
}

TEST_F(CudaBackendTest, TopKMatchesCpuWithoutBiasWithStrideAndManySelectionRounds) {
  // 20000 rows with k = 100: three selection rounds; stride > dim with NaN padding.
  const OwnedItems items = RandomItems(20000, 40, 48, /*with_bias=*/false, 12);
  CheckParity(items, 8, 100, 13);
  CheckParity(items, 3, 1, 14);
  CheckParity(items, 2, 1024, 15);  // the largest k selected on the device
}

TEST_F(CudaBackendTest, KLargerThanTheCatalogReturnsEveryEligibleItem) {
  const OwnedItems items = RandomItems(50, 16, 16, true, 16);
  CheckParity(items, 5, 100, 17);
  const OwnedItems more = RandomItems(3000, 16, 16, true, 18);
  CheckParity(more, 3, 2500, 19);  // k above the device limit: selected on the host
}

TEST_F(CudaBackendTest, ArgumentErrorsMatchTheCpuBackend) {
  const OwnedItems items = RandomItems(10, 8, 8, false, 20);
  const std::vector<float> v = RandomVector(8, 21);
  const std::vector<int32_t> unsorted = {3, 1};
  std::vector<TopKQuery> queries = {{v.data(), {}}};
  std::vector<std::vector<ScoredItem>> results(1);
  for (const int k : {0, -1}) {
    const absl::Status gpu = backend_->TopK(items.view, queries, k, absl::MakeSpan(results));
    EXPECT_EQ(gpu, cpu_.TopK(items.view, queries, k, absl::MakeSpan(results)));
    EXPECT_EQ(gpu.code(), absl::StatusCode::kInvalidArgument);
  }
  queries[0].exclude = unsorted;
  EXPECT_EQ(backend_->TopK(items.view, queries, 3, absl::MakeSpan(results)).code(),
            absl::StatusCode::kInvalidArgument);
  results[0] = {{1, 1.0f}};
  ASSERT_TRUE(backend_
                  ->TopK(ItemMatrixView{nullptr, nullptr, 0, 8, 8}, {{v.data(), {}}}, 5,
                         absl::MakeSpan(results))
                  .ok());
  EXPECT_TRUE(results[0].empty());
}

TEST_F(CudaBackendTest, TopKFromScoresEqualsTheCpuExactlyIncludingTies) {
  // Scores are taken as given (no arithmetic), so the answers must be identical; quantised
  // scores make many ties, which both order by the lower item row. NaN scores are skipped.
  Rng rng(22);
  std::vector<float> scores(100000);
  for (float& s : scores) s = std::floor(rng.UniformFloat() * 512.0f) / 64.0f;
  for (int i = 0; i < 100; ++i) scores[rng.Below(100000)] = std::nanf("");
  const std::vector<int32_t> exclude = RandomExclude(500, 0, 100000, 23);
  for (const int k : {1, 20, 777, 1024, 1500}) {
    std::vector<ScoredItem> cpu, gpu;
    ASSERT_TRUE(cpu_.TopKFromScores(scores.data(), 100000, exclude, k, &cpu).ok());
    ASSERT_TRUE(backend_->TopKFromScores(scores.data(), 100000, exclude, k, &gpu).ok());
    EXPECT_EQ(gpu, cpu) << "k " << k;
  }
  std::vector<ScoredItem> gpu = {{1, 1.0f}};
  ASSERT_TRUE(backend_->TopKFromScores(scores.data(), 0, {}, 5, &gpu).ok());
  EXPECT_TRUE(gpu.empty());
}

TEST_F(CudaBackendTest, DeviceResidentItemsGiveTheSameAnswers) {
  const OwnedItems items = RandomItems(30000, 64, 64, true, 24);
  std::vector<float> q1 = RandomVector(64, 25), q2 = RandomVector(64, 26);
  const std::vector<int32_t> exclude = RandomExclude(100, 0, 30000, 27);
  const std::vector<TopKQuery> queries = {{q1.data(), exclude}, {q2.data(), {}}};
  std::vector<std::vector<ScoredItem>> from_host(2), from_device(2);
  ASSERT_TRUE(backend_->TopK(items.view, queries, 20, absl::MakeSpan(from_host)).ok());
  std::unique_ptr<DeviceTable> vectors, bias;
  const absl::Status built = backend_->WithContext([&](const CudaContext& ctx) -> absl::Status {
    absl::StatusOr<std::unique_ptr<DeviceTable>> v = DeviceTable::Create(&ctx, 64);
    absl::StatusOr<std::unique_ptr<DeviceTable>> b = DeviceTable::Create(&ctx, 1);
    if (!v.ok()) return v.status();
    if (!b.ok()) return b.status();
    vectors = std::move(*v);
    bias = std::move(*b);
    absl::Status s = vectors->Resize(30000);
    if (s.ok()) s = bias->Resize(30000);
    if (s.ok()) s = vectors->Upload(0, items.vectors);
    if (s.ok()) s = bias->Upload(0, items.bias);
    return s;
  });
  ASSERT_TRUE(built.ok()) << built;
  const DeviceItemMatrix device{vectors->data(), bias->data(), vectors->rows(), 64, 64};
  ASSERT_TRUE(backend_->TopKDevice(device, queries, 20, absl::MakeSpan(from_device)).ok());
  for (int q = 0; q < 2; ++q) {
    const float* v = q == 0 ? q1.data() : q2.data();
    ExpectSameTopK(
        from_device[q], from_host[q], queries[q].exclude, kTol,
        [&](int32_t item) { return ReferenceScore(items.view, v, item); },
        absl::StrCat("device-resident query ", q));
  }
  (void)backend_->WithContext([&](const CudaContext&) {
    vectors.reset();
    bias.reset();
    return absl::OkStatus();
  });
}

}  // namespace
}  // namespace freshet::kernels
