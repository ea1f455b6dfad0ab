// RwLock: a reader-writer lock that lets a waiting writer in before readers that arrive after it.
// std::shared_mutex on glibc prefers readers, so under a steady stream of reads (recommendation
// requests) the learner's writes could wait indefinitely. Not recursive. A capability for clang's
// -Wthread-safety (common/mutex.h): hold it with ReaderLock or WriterLock.
#ifndef FRESHET_COMMON_RW_LOCK_H_
#define FRESHET_COMMON_RW_LOCK_H_

#include <pthread.h>

#include "absl/base/thread_annotations.h"

namespace freshet {

class ABSL_LOCKABLE RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_rwlock_wrlock(&lock_); }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return pthread_rwlock_trywrlock(&lock_) == 0;
  }
  void unlock() ABSL_UNLOCK_FUNCTION() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() ABSL_SHARED_LOCK_FUNCTION() { pthread_rwlock_rdlock(&lock_); }
  bool try_lock_shared() ABSL_SHARED_TRYLOCK_FUNCTION(true) {
    return pthread_rwlock_tryrdlock(&lock_) == 0;
  }
  void unlock_shared() ABSL_UNLOCK_FUNCTION() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};

// Holds an RwLock shared (read) for its scope, or until Release().
class ABSL_SCOPED_LOCKABLE ReaderLock {
 public:
  explicit ReaderLock(RwLock* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) { mu_->lock_shared(); }
  ~ReaderLock() ABSL_UNLOCK_FUNCTION() {
    if (held_) mu_->unlock_shared();
  }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;
  void Release() ABSL_UNLOCK_FUNCTION() {
    mu_->unlock_shared();
    held_ = false;
  }

 private:
  RwLock* const mu_;
  bool held_ = true;
};

// Holds an RwLock exclusively (write) for its scope.
class ABSL_SCOPED_LOCKABLE WriterLock {
 public:
  explicit WriterLock(RwLock* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->lock(); }
  ~WriterLock() ABSL_UNLOCK_FUNCTION() { mu_->unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  RwLock* const mu_;
};

}  // namespace freshet

#endif  // FRESHET_COMMON_RW_LOCK_H_
