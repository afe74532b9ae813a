#include "server/compute_pool.h"

#include <utility>

#include "lib/parallel.h"

namespace gradserve {

ComputePool::ComputePool(int threads) { SetComputeThreads(threads); }

ComputePool::~ComputePool() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return pending_ == 0; });
}

void ComputePool::Schedule(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++pending_;
  }
  ScheduleCompute([this, work = std::move(work)]() mutable {
    work();
    work = nullptr;  // what it captured may refer to the owner of this pool: release it first
    // Notified under the lock: once it is released the destructor may return and free idle_.
    std::lock_guard<std::mutex> lock(mu_);
    if (--pending_ == 0) idle_.notify_all();
  });
}

}  // namespace gradserve
