// A fixed set of threads for requests too large to compute on gRPC's own callback threads, so
// that a multi-megabyte request never holds up the many small ones behind it.
#ifndef GRADSERVE_SERVER_COMPUTE_POOL_H_
#define GRADSERVE_SERVER_COMPUTE_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace gradserve {

class ComputePool {
 public:
  explicit ComputePool(int threads);
  ~ComputePool();  // runs what was queued, then joins
  ComputePool(const ComputePool&) = delete;
  ComputePool& operator=(const ComputePool&) = delete;

  void Schedule(std::function<void()> work);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_COMPUTE_POOL_H_
