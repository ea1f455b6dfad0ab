#include "common/transparent_huge_pages.h"

#include <sys/prctl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)  // linux/prctl.h since 6.18
#endif

namespace freshet {

absl::Status LimitHugePagesToAdvised() {
  if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) == 0) {
    return absl::OkStatus();
  }
  const int error = errno;
  if (error == EINVAL) {
    return absl::UnimplementedError(
        "this kernel cannot limit transparent huge pages to the memory that asks for them "
        "(PR_THP_DISABLE_EXCEPT_ADVISED needs Linux 6.18)");
  }
  return absl::InternalError(
      absl::StrCat("prctl(PR_SET_THP_DISABLE, EXCEPT_ADVISED): ", std::strerror(error)));
}

std::string SystemHugePageSetting() {
  // The file reads like "always [madvise] never": the bracketed word is the setting.
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  const size_t open = line.find('[');
  const size_t close = line.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

}  // namespace freshet
