// Where the server computes requests too large for gRPC's own callback threads, so that a
// multi-megabyte request never holds up the many small ones behind it (those run inline).
//
// The work runs on the process's compute threads (lib/parallel.h), the same threads that help
// with each request's row loops, so the threads computing never outnumber them: 4 big requests
// on 2 cores compute on 2 threads, one big request alone on both.
//
//   ComputePool pool(ResolveThreads(options.compute_threads));
//   pool.Schedule([=] { done(work()); });
#ifndef GRADSERVE_SERVER_COMPUTE_POOL_H_
#define GRADSERVE_SERVER_COMPUTE_POOL_H_

#include <condition_variable>
#include <functional>
#include <mutex>

namespace gradserve {

class ComputePool {
 public:
  // Sizes the process's compute threads to `threads` (<= 0: every core) if they have not started
  // yet; once started, their number stays (one server per process sets it first).
  explicit ComputePool(int threads);
  ~ComputePool();  // waits for the work scheduled here to finish
  ComputePool(const ComputePool&) = delete;
  ComputePool& operator=(const ComputePool&) = delete;

  // Runs `work` on a compute thread, in order with other scheduled work.
  void Schedule(std::function<void()> work);

 private:
  // std::mutex rather than absl::Mutex: ThreadSanitizer sees through it (Debian's Abseil is not
  // built with TSan's annotations).
  std::mutex mu_;
  std::condition_variable idle_;
  int pending_ = 0;  // scheduled here and not yet finished; guarded by mu_
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_COMPUTE_POOL_H_
