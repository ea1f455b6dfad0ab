#include "common/transparent_huge_pages.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/huge_page_allocator.h"
#include "gtest/gtest.h"

namespace freshet {
namespace {

// The THPeligible field of the mapping holding `p` in /proc/self/smaps; -1 if none is found.
int ThpEligible(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> start >> dash >> end && dash == '-') {
      inside = start <= address && address < end;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::atoi(line.c_str() + 12);
    }
  }
  return -1;
}

TEST(TransparentHugePagesTest, AfterTheLimitOnlyAdvisedMemoryGetsHugePages) {
  const std::string setting = SystemHugePageSetting();
  if (setting != "always" && setting != "madvise") {
    GTEST_SKIP() << "transparent huge pages are '" << setting << "' here";
  }
  const size_t bytes = size_t{8} << 20;
  void* before = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(before, MAP_FAILED);
  // The kernel's own setting decides before the limit (unless this process inherited a limit).
  if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 0) {
    EXPECT_EQ(ThpEligible(before), setting == "always" ? 1 : 0);
  }
  const absl::Status limited = LimitHugePagesToAdvised();
  if (absl::IsUnimplemented(limited)) GTEST_SKIP() << limited;
  ASSERT_TRUE(limited.ok()) << limited;
  EXPECT_EQ(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), 0b11);  // THP-except-advised

  void* plain = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(plain, MAP_FAILED);
  void* table = AllocateForRandomAccess(bytes, 64);  // asks for huge pages (MADV_HUGEPAGE)
  EXPECT_EQ(ThpEligible(plain), 0);
  EXPECT_EQ(ThpEligible(before), 0);  // memory mapped before the limit too
  EXPECT_EQ(ThpEligible(table), 1);
  munmap(before, bytes);
  munmap(plain, bytes);
  std::free(table);
}

}  // namespace
}  // namespace freshet
