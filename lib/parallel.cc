#include "lib/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace gradserve {
namespace {

// One ParallelForRows call's blocks, which the caller and any helpers that join take in turn.
struct Job {
  std::atomic<int64_t> next{0};
  int64_t blocks = 0;
  const std::function<void(int64_t)>* run_block = nullptr;
  int slots = 0;   // helpers that may still join; guarded by Helpers::mu_
  int active = 0;  // helpers working on it now; guarded by Helpers::mu_

  // Takes blocks until none are left, or, for a helper (`running` set), until more than `cap`
  // threads compute: a caller that started meanwhile gets the core back within a block.
  void Work(const std::atomic<int>* running = nullptr, int cap = 0) {
    for (int64_t b = next.fetch_add(1); b < blocks; b = next.fetch_add(1)) {
      (*run_block)(b);
      if (running != nullptr && running->load(std::memory_order_relaxed) > cap) return;
    }
  }
};

// The process's helper threads: AvailableCores() - 1 of them, shared by every caller, so that
// concurrent calls (a server's compute threads) never start a team of threads each. A helper
// joins a call only while fewer than AvailableCores() threads compute (callers count), so the
// threads computing stay at the core count however many calls run at once.
class Helpers {
 public:
  static Helpers& Get() {
    static Helpers* helpers = new Helpers(AvailableCores() - 1);  // never destroyed: see Loop
    return *helpers;
  }

  // Runs `job` on the calling thread and on up to `helpers` idle helpers; returns once all of
  // them are done with it.
  void Run(Job* job, int helpers) {
    running_.fetch_add(1);
    if (helpers > 0 && !threads_.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      job->slots = helpers;
      queue_.push_back(job);
      work_.notify_all();
    }
    job->Work();
    std::unique_lock<std::mutex> lock(mu_);
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    done_.wait(lock, [job] { return job->active == 0; });
    running_.fetch_sub(1);
  }

 private:
  explicit Helpers(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
    for (std::thread& t : threads_) t.detach();
  }

  // Helpers run until the process exits (the pool is never destroyed, so exit never waits on
  // them or destroys state they use).
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [this] { return !queue_.empty(); });
      // Compute only while a core is free; otherwise leave the job to its caller.
      const int cores = static_cast<int>(threads_.size()) + 1;
      if (running_.load() >= cores) {
        queue_.front()->slots = 0;
        queue_.pop_front();
        continue;
      }
      Job* job = queue_.front();
      if (--job->slots == 0) queue_.pop_front();
      ++job->active;
      running_.fetch_add(1);
      lock.unlock();
      job->Work(&running_, cores);
      running_.fetch_sub(1);
      lock.lock();
      if (--job->active == 0) done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable done_;
  std::deque<Job*> queue_;
  std::atomic<int> running_{0};  // threads inside Job::Work, callers included
  std::vector<std::thread> threads_;
};

}  // namespace

int CoresUnderCpuMax(absl::string_view cpu_max, int cores) {
  const std::vector<absl::string_view> fields =
      absl::StrSplit(cpu_max, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  int64_t quota = 0, period = 0;
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &quota) ||
      !absl::SimpleAtoi(fields[1], &period) || quota <= 0 || period <= 0) {
    return cores;  // "max": no limit
  }
  const int64_t limit = (quota + period - 1) / period;
  return static_cast<int>(std::clamp<int64_t>(limit, 1, cores));
}

int AvailableCores() {
  // Both ask the kernel each time: once is enough.
  static const int cores = [] {
    cpu_set_t set;
    const int affinity = sched_getaffinity(0, sizeof(set), &set) == 0
                             ? std::max(1, CPU_COUNT(&set))
                             : std::max(1u, std::thread::hardware_concurrency());
    std::ifstream cpu_max("/sys/fs/cgroup/cpu.max");
    if (!cpu_max) return affinity;
    std::stringstream text;
    text << cpu_max.rdbuf();
    return CoresUnderCpuMax(text.str(), affinity);
  }();
  return cores;
}

int ResolveThreads(int max_threads) {
  const int cores = AvailableCores();
  return max_threads <= 0 ? cores : std::min(max_threads, cores);
}

absl::Status ParallelForRows(int64_t rows, int64_t cost_per_row, const ExecContext& ctx,
                             const std::function<void(int64_t, int64_t)>& body) {
  if (rows <= 0) return absl::OkStatus();
  const int64_t cost = std::max<int64_t>(cost_per_row, 1);
  // Blocks of about kMinParallelWork units: large enough to amortise a cancellation poll, small
  // enough that a cancelled call stops within a fraction of a millisecond.
  const int64_t block = std::max<int64_t>(1, kMinParallelWork / cost);
  const int64_t blocks = (rows + block - 1) / block;
  const int threads =
      static_cast<int>(std::min<int64_t>(ResolveThreads(ctx.max_threads), blocks));

  std::atomic<bool> cancelled{false};
  const std::function<void(int64_t)> run_block = [&](int64_t b) {
    if (cancelled.load(std::memory_order_relaxed)) return;
    if (IsCancelled(ctx)) {
      cancelled.store(true, std::memory_order_relaxed);
      return;
    }
    const int64_t begin = b * block;
    body(begin, std::min(rows, begin + block));
  };
  if (threads <= 1) {
    for (int64_t b = 0; b < blocks; ++b) run_block(b);
  } else {
    // Blocks are taken in order, so each thread streams through runs of adjacent rows.
    Job job;
    job.blocks = blocks;
    job.run_block = &run_block;
    Helpers::Get().Run(&job, threads - 1);
  }
  if (cancelled.load()) return absl::CancelledError("computation cancelled by the caller");
  return absl::OkStatus();
}

}  // namespace gradserve
