// BurstEnd: work a thread postpones to the end of its current burst, once per target.
//
// Two things are cheaper done once per burst than once per item:
// - waking another thread. The thread that scores a batch answers one request after another; each
//   answer goes to the HTTP I/O thread that owns the request's connection, which must be woken (an
//   eventfd write, a system call and a reschedule). Deferred, a batch of 12 answers for 2 I/O
//   threads costs 2 wake-ups instead of up to 12.
// - batched work. An HTTP I/O thread opens a scope around each round of ready connections;
//   LiveModel queues the round's recommendation queries and scores them together, on that thread,
//   when the round ends, instead of handing each to a scoring thread.
//
//   {
//     BurstEnd burst;                            // on the thread doing the burst
//     for (auto& r : batch) r->done(result);     // components defer their work
//   }                                            // each distinct target's work runs once, here
//
//   // In the component (e.g. a mailbox's Post):
//   if (!BurstEnd::Defer(this, [self] { self->Wake(); })) Wake();
//
// Scopes nest (an inner one joins the outer). Deferred work runs when the outermost scope ends, on
// the thread that opened it, in the order it was first deferred; while it runs no scope is open,
// so work that wants its own deferrals opens a new one. Deferred work must not throw.
//
// Thread-safety: per thread (the open scope is thread-local); Defer() from any thread.
#ifndef FRESHET_COMMON_BURST_END_H_
#define FRESHET_COMMON_BURST_END_H_

#include <functional>
#include <utility>
#include <vector>

namespace freshet {

class BurstEnd {
 public:
  BurstEnd() : outer_(current_) {
    if (outer_ == nullptr) current_ = this;
  }
  ~BurstEnd() {
    if (outer_ != nullptr) return;
    current_ = nullptr;
    for (auto& [key, work] : work_) work();
  }
  BurstEnd(const BurstEnd&) = delete;
  BurstEnd& operator=(const BurstEnd&) = delete;

  // With a scope open on this thread: keeps `work` (the first one per `key`) for the scope's end
  // and returns true. Without one: returns false, and the caller does the work now.
  template <typename Work>
  static bool Defer(const void* key, Work&& work) {
    BurstEnd* scope = current_;
    if (scope == nullptr) return false;
    for (const auto& entry : scope->work_) {
      if (entry.first == key) return true;
    }
    scope->work_.emplace_back(key, std::forward<Work>(work));
    return true;
  }

 private:
  static inline thread_local BurstEnd* current_ = nullptr;
  BurstEnd* const outer_;  // the scope already open on this thread, if any
  std::vector<std::pair<const void*, std::function<void()>>> work_;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_BURST_END_H_
