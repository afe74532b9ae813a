#include "server/compute_pool.h"

#include <utility>

#include "lib/parallel.h"

namespace gradserve {

ComputePool::ComputePool(int threads) { SetComputeThreads(threads); }

ComputePool::~ComputePool() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](ComputePool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->pending_ == 0; },
      this));
}

void ComputePool::Schedule(std::function<void()> work) {
  {
    absl::MutexLock lock(&mu_);
    ++pending_;
  }
  ScheduleCompute([this, work = std::move(work)]() mutable {
    work();
    work = nullptr;  // what it captured may refer to the owner of this pool: release it first
    absl::MutexLock lock(&mu_);
    --pending_;
  });
}

}  // namespace gradserve
