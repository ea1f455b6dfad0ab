#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace freshet::kernels {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(BackendRegistryTest, CpuIsAlwaysAvailable) {
  std::string note;
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cpu", &note);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->Name(), "cpu");
  EXPECT_THAT(note, Not(IsEmpty()));
  EXPECT_TRUE(CreateBackend("cpu").ok());  // the note is optional
}

// Without CUDA compiled in (or without a device) "cuda" is Unavailable with the reason; with it,
// a cuda backend. Either way "auto" succeeds and says what it picked.
TEST(BackendRegistryTest, CudaIsUnavailableWithAReasonOrWorks) {
  std::string cuda_note = "unchanged";
  absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateBackend("cuda", &cuda_note);
  std::string auto_note;
  absl::StatusOr<std::unique_ptr<Backend>> chosen = CreateBackend("auto", &auto_note);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->Name(), "cuda");
    EXPECT_EQ((*chosen)->Name(), "cuda");
    EXPECT_THAT(auto_note, HasSubstr("cuda"));
  } else {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable) << cuda.status();
    EXPECT_THAT(std::string(cuda.status().message()), Not(IsEmpty()));
    EXPECT_EQ(cuda_note, "unchanged");  // no note for a failure: the status says it all
    EXPECT_EQ((*chosen)->Name(), "cpu");
    EXPECT_THAT(auto_note, HasSubstr("cpu"));
    EXPECT_THAT(auto_note, HasSubstr(std::string(cuda.status().message())));
  }
}

TEST(BackendRegistryTest, WithoutCudaTheMessageSaysHowItWasBuilt) {
  absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateBackend("cuda");
  if (cuda.ok() || !absl::StrContains(cuda.status().message(), "built without CUDA")) {
    GTEST_SKIP() << "CUDA is compiled in: " << cuda.status();
  }
  EXPECT_EQ(cuda.status().message(),
            "freshet was built without CUDA support (FRESHET_CUDA=OFF or nvcc not found at build "
            "time)");
}

TEST(BackendRegistryTest, UnknownNamesListTheValidOnes) {
  for (const char* name : {"", "CPU", "gpu", "cpu ", "metal"}) {
    absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend(name);
    ASSERT_FALSE(backend.ok()) << name;
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(backend.status().message()), HasSubstr("cpu, cuda, auto")) << name;
  }
}

}  // namespace
}  // namespace freshet::kernels
