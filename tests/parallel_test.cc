#include "lib/parallel.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace gradserve {
namespace {

TEST(ParallelForRowsTest, VisitsEveryRowExactlyOnce) {
  for (int64_t rows : {0, 1, 7, 1000, 100003}) {
    std::vector<std::atomic<int>> seen(rows);
    const absl::Status s = ParallelForRows(rows, 64, ExecContext{}, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) seen[i].fetch_add(1);
    });
    ASSERT_TRUE(s.ok()) << s;
    for (int64_t i = 0; i < rows; ++i) ASSERT_EQ(seen[i].load(), 1) << "row " << i;
  }
}

TEST(ParallelForRowsTest, CancellationStopsEarlyWithCancelled) {
  std::atomic<int64_t> visited{0};
  ExecContext ctx;
  ctx.is_cancelled = [&] { return visited.load() > 0; };
  const absl::Status s = ParallelForRows(1 << 20, 1 << 10, ctx, [&](int64_t b, int64_t e) {
    visited.fetch_add(e - b);
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(visited.load(), 1 << 20);
}

TEST(ParallelForRowsTest, SmallWorkRunsOnTheCallingThread) {
  const std::thread::id caller = std::this_thread::get_id();
  bool same_thread = false;
  ASSERT_TRUE(ParallelForRows(4, 10, ExecContext{}, [&](int64_t, int64_t) {
    same_thread = std::this_thread::get_id() == caller;
  }).ok());
  EXPECT_TRUE(same_thread);
}

// Threads of this process, from /proc/self/status.
int ProcessThreads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Work of `blocks` blocks that each take about a millisecond, so helpers have time to join.
absl::Status SlowBlocks(int blocks, const std::function<void()>& in_block) {
  return ParallelForRows(blocks, kMinParallelWork, ExecContext{}, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      in_block();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
}

// Counts the bodies running at once and remembers the most; `on_compute` counts only those on
// compute threads.
class Peak {
 public:
  void Enter() {
    const int n = now_.fetch_add(1) + 1;
    int m = most_.load();
    while (n > m && !most_.compare_exchange_weak(m, n)) {
    }
  }
  void Leave() { now_.fetch_sub(1); }
  int most() const { return most_.load(); }

 private:
  std::atomic<int> now_{0}, most_{0};
};

// Waits for `count` calls of Done().
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void Done() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

// Runs `task` on a compute thread and waits for it.
void OnComputeThreadAndWait(const std::function<void()>& task) {
  Latch done(1);
  ScheduleCompute([&] {
    task();
    done.Done();
  });
  done.Wait();
}

TEST(ParallelForRowsTest, OneCallAloneUsesEveryComputeThread) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  OnComputeThreadAndWait([&] {
    ASSERT_TRUE(SlowBlocks(200, [&] {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    }).ok());
  });
  EXPECT_EQ(static_cast<int>(ids.size()), ComputeThreads());
}

TEST(ParallelForRowsTest, ACallFromOutsideComputesOnItsOwnThreadToo) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  ASSERT_TRUE(SlowBlocks(200, [&] {
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  }).ok());
  EXPECT_TRUE(ids.count(std::this_thread::get_id()));
  EXPECT_LE(static_cast<int>(ids.size()), std::min(AvailableCores(), ComputeThreads() + 1));
}

TEST(ComputeThreadsTest, ConcurrentCallsNeverComputeOnMoreThanTheComputeThreads) {
  // As in the server: more big requests than threads, each a task whose row loop wants every
  // core, while other threads (gRPC's, with small requests) run loops of their own. Helpers are
  // only idle compute threads, so the compute threads' bodies never outnumber them.
  const int before = ProcessThreads();
  ASSERT_GT(before, 0);
  const int threads = ComputeThreads();
  const int tasks = 2 * threads + 2;
  constexpr int kOutsideCallers = 2;
  Peak on_compute, all;
  std::atomic<int> off_compute_in_tasks{0};
  Latch done(tasks);
  auto rounds = [&](bool in_task) {
    for (int round = 0; round < 3; ++round) {
      EXPECT_TRUE(SlowBlocks(10, [&] {
        const bool counted = OnComputeThread();
        if (in_task && !counted) off_compute_in_tasks.fetch_add(1);
        if (counted) on_compute.Enter();
        all.Enter();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        all.Leave();
        if (counted) on_compute.Leave();
      }).ok());
    }
  };
  for (int t = 0; t < tasks; ++t) {
    ScheduleCompute([&] {
      rounds(true);
      done.Done();
    });
  }
  std::vector<std::thread> outside;
  for (int c = 0; c < kOutsideCallers; ++c) outside.emplace_back([&] { rounds(false); });
  for (std::thread& t : outside) t.join();
  done.Wait();
  EXPECT_EQ(off_compute_in_tasks.load(), 0);
  EXPECT_LE(on_compute.most(), threads);
  EXPECT_GE(on_compute.most(), 1);
  EXPECT_LE(all.most(), threads + kOutsideCallers);
  // The compute threads exist once: no thread per call or per task.
  EXPECT_LE(ProcessThreads() - before, threads);
}

TEST(ComputeThreadsTest, TasksOnlyEverRunComputeThreadsNumberAtOnce) {
  const int threads = ComputeThreads();
  Peak peak;
  Latch done(4 * threads);
  for (int t = 0; t < 4 * threads; ++t) {
    ScheduleCompute([&] {
      peak.Enter();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      peak.Leave();
      done.Done();
    });
  }
  done.Wait();
  EXPECT_LE(peak.most(), threads);
}

TEST(ComputeThreadsTest, AHelperReturnsToAWaitingTask) {
  if (ComputeThreads() < 2) GTEST_SKIP() << "one compute thread: the second task waits";
  // The first task's loop (about 2 s on one thread) borrows every other compute thread; the
  // second task must get one back within a block, which stops the loop at its next poll.
  std::atomic<bool> second_started{false};
  absl::Status loop;
  Latch first_started(1), done(2);
  ScheduleCompute([&] {
    ExecContext ctx;
    ctx.is_cancelled = [&] { return second_started.load(); };
    std::atomic<bool> once{false};
    loop = ParallelForRows(2000, kMinParallelWork, ctx, [&](int64_t b, int64_t e) {
      if (!once.exchange(true)) first_started.Done();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    done.Done();
  });
  first_started.Wait();
  ScheduleCompute([&] {
    second_started = true;
    done.Done();
  });
  done.Wait();
  EXPECT_EQ(loop.code(), absl::StatusCode::kCancelled) << loop;
}

TEST(ComputeThreadsTest, TheirNumberIsFixedOnceStarted) {
  OnComputeThreadAndWait([] { EXPECT_TRUE(OnComputeThread()); });
  EXPECT_FALSE(OnComputeThread());
  EXPECT_TRUE(SetComputeThreads(ComputeThreads()));
  EXPECT_FALSE(SetComputeThreads(ComputeThreads() + 1));
  EXPECT_EQ(ComputeThreads(), AvailableCores());  // this test program never set a number
}

TEST(ResolveThreadsTest, ZeroMeansAllCoresAndIsCapped) {
  EXPECT_GE(ResolveThreads(0), 1);
  EXPECT_EQ(ResolveThreads(1), 1);
  EXPECT_EQ(ResolveThreads(100000), ResolveThreads(0));
  EXPECT_EQ(ResolveThreads(0), AvailableCores());
}

TEST(CoresUnderCpuMaxTest, AContainerLimitRoundsUpAndNeverExceedsTheCores) {
  EXPECT_EQ(CoresUnderCpuMax("200000 100000\n", 64), 2);
  EXPECT_EQ(CoresUnderCpuMax("150000 100000", 64), 2);  // 1.5 CPUs: 2 threads, not 1
  EXPECT_EQ(CoresUnderCpuMax("50000 100000", 64), 1);
  EXPECT_EQ(CoresUnderCpuMax("800000 100000", 4), 4);
}

TEST(CoresUnderCpuMaxTest, NoLimitOrUnreadableTextLeavesTheCores) {
  EXPECT_EQ(CoresUnderCpuMax("max 100000\n", 8), 8);
  EXPECT_EQ(CoresUnderCpuMax("", 8), 8);
  EXPECT_EQ(CoresUnderCpuMax("100000", 8), 8);
  EXPECT_EQ(CoresUnderCpuMax("-1 100000", 8), 8);
  EXPECT_EQ(CoresUnderCpuMax("200000 0", 8), 8);
}

}  // namespace
}  // namespace gradserve
