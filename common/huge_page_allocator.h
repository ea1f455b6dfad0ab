// HugePageAllocator: a std::allocator replacement for large arrays read at random positions
// (per-user state, hash tables). Allocations of 2 MiB or more are 2 MiB aligned and advised to use
// transparent huge pages, which cuts the TLB misses of random reads; smaller ones are ordinary.
// Where the kernel has transparent huge pages off, the advice is ignored and nothing changes.
#ifndef FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_
#define FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>

namespace freshet {

template <typename T>
class HugePageAllocator {
 public:
  using value_type = T;
  static constexpr size_t kHugePage = size_t{2} << 20;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: allocators convert implicitly

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) {
      return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
    }
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (p == nullptr) throw std::bad_alloc();
    madvise(p, rounded, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }

  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePage) {
      ::operator delete(p, std::align_val_t{alignof(T)});
    } else {
      std::free(p);
    }
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
};

}  // namespace freshet

#endif  // FRESHET_COMMON_HUGE_PAGE_ALLOCATOR_H_
