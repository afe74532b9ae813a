#include "lib/parallel.h"

#include <pthread.h>
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

thread_local bool on_compute_thread = false;

// One ParallelForRows call's blocks, which its caller and any compute threads that help take in
// turn.
struct Job {
  std::atomic<int64_t> next{0};
  int64_t blocks = 0;
  const std::function<void(int64_t)>* run_block = nullptr;
  int slots = 0;   // helpers that may still join; guarded by Pool::mu_
  int active = 0;  // helpers working on it now; guarded by Pool::mu_

  // Takes blocks until none are left, or, for a helper (`tasks_waiting` set), until a task waits
  // for a compute thread: a big request that arrives gets its thread back within a block.
  void Work(const std::atomic<int>* tasks_waiting = nullptr) {
    for (int64_t b = next.fetch_add(1); b < blocks; b = next.fetch_add(1)) {
      (*run_block)(b);
      if (tasks_waiting != nullptr && tasks_waiting->load(std::memory_order_relaxed) > 0) return;
    }
  }
};

// The number of compute threads (0: not set yet), and whether they have started.
struct PoolConfig {
  std::mutex mu;
  int threads = 0;
  bool started = false;
};

PoolConfig& Config() {
  static PoolConfig* config = new PoolConfig;
  return *config;
}

// The compute threads. Each runs one thing at a time, a task or blocks of a loop, so the work
// they do never needs more threads than there are of them; tasks come first.
class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = [] {  // never destroyed: see Loop
      PoolConfig& config = Config();
      std::lock_guard<std::mutex> lock(config.mu);
      config.started = true;
      if (config.threads <= 0) config.threads = AvailableCores();
      return new Pool(config.threads);
    }();
    return *pool;
  }

  void Schedule(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
      tasks_waiting_.store(static_cast<int>(tasks_.size()), std::memory_order_relaxed);
    }
    work_.notify_one();
  }

  // Runs `job` on the calling thread and on up to `helpers` idle compute threads; returns once
  // all of them are done with it.
  void Run(Job* job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->slots = helpers;
      jobs_.push_back(job);
    }
    for (int i = 0; i < std::min(helpers, threads_); ++i) work_.notify_one();
    job->Work();
    std::unique_lock<std::mutex> lock(mu_);
    jobs_.erase(std::remove(jobs_.begin(), jobs_.end(), job), jobs_.end());
    done_.wait(lock, [job] { return job->active == 0; });
  }

 private:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 0; i < threads; ++i) std::thread([this] { Loop(); }).detach();
  }

  // Compute threads run until the process exits (the pool is never destroyed, so exit never
  // waits on them or destroys state they use).
  void Loop() {
    on_compute_thread = true;
    pthread_setname_np(pthread_self(), "gs-compute");  // for ps -L and top -H
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [this] { return !tasks_.empty() || !jobs_.empty(); });
      if (!tasks_.empty()) {
        std::function<void()> task = std::move(tasks_.front());
        tasks_.pop_front();
        tasks_waiting_.store(static_cast<int>(tasks_.size()), std::memory_order_relaxed);
        lock.unlock();
        task();
        task = nullptr;  // its captures are released outside the lock too
        lock.lock();
        continue;
      }
      Job* job = jobs_.front();
      if (--job->slots == 0) jobs_.pop_front();
      ++job->active;
      lock.unlock();
      job->Work(&tasks_waiting_);
      lock.lock();
      // Left for a task that another thread may have taken meanwhile: offer the place back.
      if (job->next.load() < job->blocks && job->slots++ == 0) jobs_.push_front(job);
      if (--job->active == 0) done_.notify_all();
    }
  }

  const int threads_;
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable done_;
  std::deque<std::function<void()>> tasks_;
  std::deque<Job*> jobs_;  // loops that want helpers
  std::atomic<int> tasks_waiting_{0};  // tasks_.size(), read by helpers without the lock
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

bool SetComputeThreads(int threads) {
  PoolConfig& config = Config();
  std::lock_guard<std::mutex> lock(config.mu);
  const int wanted = threads > 0 ? threads : AvailableCores();
  if (config.started) return wanted == config.threads;
  config.threads = wanted;
  return true;
}

int ComputeThreads() {
  PoolConfig& config = Config();
  std::lock_guard<std::mutex> lock(config.mu);
  return config.threads > 0 ? config.threads : AvailableCores();
}

void ScheduleCompute(std::function<void()> task) { Pool::Get().Schedule(std::move(task)); }

bool OnComputeThread() { return on_compute_thread; }

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
    Pool::Get().Run(&job, threads - 1);
  }
  if (cancelled.load()) return absl::CancelledError("computation cancelled by the caller");
  return absl::OkStatus();
}

}  // namespace gradserve
