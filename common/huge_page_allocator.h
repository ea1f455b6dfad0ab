// Memory for large arrays read at random positions (embedding tables, per-user state, hash
// tables). Allocations of 2 MiB or more are 2 MiB aligned and advised to use transparent huge
// pages, which cuts the TLB misses of random reads; smaller ones are ordinary aligned allocations.
// Where the kernel has transparent huge pages off, the advice is ignored and nothing changes.
#ifndef FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_
#define FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace freshet {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` of memory aligned to at least `alignment` (a power of two), huge-page backed when large.
// Release it with std::free. Throws std::bad_alloc when out of memory, like operator new.
inline void* AllocateForRandomAccess(size_t bytes, size_t alignment) {
  const size_t align = bytes >= kHugePageBytes ? std::max(alignment, kHugePageBytes) : alignment;
  const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (align >= kHugePageBytes) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

// A std::allocator replacement over AllocateForRandomAccess, for std::vector.
template <typename T>
class HugePageAllocator {
 public:
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: allocators convert implicitly

  T* allocate(size_t n) {
    return static_cast<T*>(AllocateForRandomAccess(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, size_t) { std::free(p); }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
};

}  // namespace freshet

#endif  // FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_
