// Locks whose discipline clang's -Wthread-safety checks (scripts/thread_safety.sh): members carry
// ABSL_GUARDED_BY(mu_), functions that expect a lock held ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) or
// ABSL_SHARED_LOCKS_REQUIRED(mu_), and the scoped guards below tell the analysis what is held.
//
// std::mutex and std::condition_variable underneath, not absl::Mutex: ThreadSanitizer sees
// inside the standard library's locks but not inside Debian's prebuilt Abseil.
#ifndef FRESHET_COMMON_MUTEX_H_
#define FRESHET_COMMON_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace freshet {

// An exclusive lock (a std::mutex the analysis knows as a capability). Not recursive.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells the analysis the caller holds the lock (where it cannot see it, e.g. in a callback).
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope, or until Release().
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() {
    if (held_) mu_->unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Release() ABSL_UNLOCK_FUNCTION() {
    mu_->unlock();
    held_ = false;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable for Mutex. Callers loop on their condition themselves
// (`while (!ready_) cv_.Wait(&mu_);`), so the analysis sees the guarded reads under the lock.
class CondVar {
 public:
  // Releases `mu` while waiting; holds it again on return (also on a spurious wake-up).
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait(), for at most `timeout`; false once it has passed.
  bool WaitFor(Mutex* mu, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const std::cv_status status =
        cv_.wait_for(lock, std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout)));
    lock.release();
    return status == std::cv_status::no_timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_MUTEX_H_
