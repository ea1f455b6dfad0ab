#include "serving/http/blocking_pool.h"

#include <pthread.h>

#include <utility>

namespace freshet::serving {

BlockingPool::BlockingPool(int threads, int queue)
    : threads_(threads < 1 ? 1 : threads), queue_limit_(queue < 0 ? 0 : queue) {}

BlockingPool::~BlockingPool() { Stop(); }

void BlockingPool::Start() {
  MutexLock stop_lock(&stop_mu_);
  MutexLock lock(&mu_);
  if (running_ || stopped_) return;
  running_ = true;
  workers_.reserve(static_cast<size_t>(threads_));
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { Loop(); });
}

void BlockingPool::Stop() {
  MutexLock stop_lock(&stop_mu_);
  std::deque<Task> cancelled;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    running_ = false;
    cancelled.swap(queue_);
  }
  cv_.SignalAll();
  for (Task& task : cancelled) {
    if (task.cancel) task.cancel();
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

bool BlockingPool::TrySubmit(std::function<void()> run, std::function<void()> cancel) {
  {
    MutexLock lock(&mu_);
    if (!running_) return false;
    // At most threads_ running and queue_limit_ waiting, however far the threads have got since
    // Start() (a task queued before a thread first waits is simply taken when it does).
    if (busy_ + static_cast<int>(queue_.size()) >= threads_ + queue_limit_) return false;
    queue_.push_back(Task{std::move(run), std::move(cancel)});
  }
  cv_.Signal();
  return true;
}

void BlockingPool::Loop() {
  pthread_setname_np(pthread_self(), "freshet-block");
  for (;;) {
    Task task;
    {
      MutexLock lock(&mu_);
      while (!stopped_ && queue_.empty()) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopped
      task = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    task.run();
    MutexLock lock(&mu_);
    --busy_;
  }
}

}  // namespace freshet::serving
