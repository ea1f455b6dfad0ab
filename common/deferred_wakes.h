// DeferredWakes: coalesces the wake-ups one thread sends to others during a burst of work.
//
// The scoring thread answers a batch of requests one callback after another; each answer is handed
// to the HTTP I/O thread that owns the request's connection, which must be woken (an eventfd
// write, a system call and a reschedule). While a DeferredWakes scope is open on a thread, a
// component about to wake another thread registers the wake-up here instead, once per target, and
// the scope's end sends each of them once: a batch of 12 answers for 2 I/O threads costs 2
// wake-ups instead of up to 12.
//
//   {
//     DeferredWakes wakes;                       // on the thread that answers
//     for (auto& r : batch) r->done(result);     // handlers post; their wake-ups wait
//   }                                            // each distinct target woken once, here
//
//   // In the component that wakes (e.g. a mailbox's Post):
//   if (!DeferredWakes::Defer(this, [self] { self->Wake(); })) Wake();
//
// Scopes nest (an inner one joins the outer). A wake-up deferred in a scope runs at the latest
// when the outermost scope ends, on the thread that opened it.
//
// Thread-safety: per thread (the open scope is thread-local); Defer() from any thread.
#ifndef FRESHET_COMMON_DEFERRED_WAKES_H_
#define FRESHET_COMMON_DEFERRED_WAKES_H_

#include <functional>
#include <utility>
#include <vector>

namespace freshet {

class DeferredWakes {
 public:
  DeferredWakes() : outer_(current_) {
    if (outer_ == nullptr) current_ = this;
  }
  ~DeferredWakes() {
    if (outer_ != nullptr) return;
    current_ = nullptr;
    for (auto& [key, wake] : wakes_) wake();
  }
  DeferredWakes(const DeferredWakes&) = delete;
  DeferredWakes& operator=(const DeferredWakes&) = delete;

  // With a scope open on this thread: keeps `wake` (the first one per `key`) for the scope's end
  // and returns true. Without one: returns false, and the caller wakes its target now.
  template <typename Wake>
  static bool Defer(const void* key, Wake&& wake) {
    DeferredWakes* scope = current_;
    if (scope == nullptr) return false;
    for (const auto& entry : scope->wakes_) {
      if (entry.first == key) return true;
    }
    scope->wakes_.emplace_back(key, std::forward<Wake>(wake));
    return true;
  }

 private:
  static inline thread_local DeferredWakes* current_ = nullptr;
  DeferredWakes* const outer_;  // the scope already open on this thread, if any
  std::vector<std::pair<const void*, std::function<void()>>> wakes_;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_DEFERRED_WAKES_H_
