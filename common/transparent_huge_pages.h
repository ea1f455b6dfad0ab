// Which memory of this process the kernel may back with transparent huge pages (THP).
//
// The tables read at random positions ask for huge pages themselves (common/huge_page_allocator.h:
// embedding tables, per-user state, id dictionaries), which cuts their TLB misses. Everything else
// is better off without them: where the kernel's setting is "always", every state batch (megabytes
// encoded by the learning thread, then copied into RocksDB's memtable and write-ahead log) faults
// in and zeroes fresh 2 MB pages, and the serving tail grows while it does (benchmarks/RESULTS.md,
// "Serving tail and the state batches").
#ifndef FRESHET_COMMON_TRANSPARENT_HUGE_PAGES_H_
#define FRESHET_COMMON_TRANSPARENT_HUGE_PAGES_H_

#include <string>

#include "absl/status/status.h"

namespace freshet {

// Limits huge pages to the memory that asks for them (madvise MADV_HUGEPAGE), whatever the
// kernel's setting: prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED), inherited by
// children. Unimplemented on kernels older than 6.18, which do not have that mode (nothing is
// changed then).
absl::Status LimitHugePagesToAdvised();

// The kernel's setting (/sys/kernel/mm/transparent_hugepage/enabled): "always", "madvise" or
// "never"; empty where the file is missing or unreadable.
std::string SystemHugePageSetting();

}  // namespace freshet

#endif  // FRESHET_COMMON_TRANSPARENT_HUGE_PAGES_H_
