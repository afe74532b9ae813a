#include "lib/parallel.h"

#include <atomic>
#include <chrono>
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

TEST(ParallelForRowsTest, OneCallUsesEveryCore) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  ASSERT_TRUE(SlowBlocks(200, [&] {
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  }).ok());
  EXPECT_EQ(static_cast<int>(ids.size()), AvailableCores());
}

TEST(ParallelForRowsTest, ConcurrentCallsShareOneSetOfHelperThreads) {
  // Each caller starting a team of AvailableCores() threads would leave callers × (cores - 1)
  // threads behind; shared helpers are at most cores - 1 in all.
  const int before = ProcessThreads();
  ASSERT_GT(before, 0);
  constexpr int kCallers = 4;
  std::atomic<int> now{0}, most{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 3; ++round) {
        EXPECT_TRUE(SlowBlocks(20, [&] {
          const int n = now.fetch_add(1) + 1;
          int m = most.load();
          while (n > m && !most.compare_exchange_weak(m, n)) {
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          now.fetch_sub(1);
        }).ok());
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_LE(ProcessThreads() - before, AvailableCores() - 1);
  // Helpers join only while a core is free; a caller arriving meanwhile takes its core back
  // within one block, so at most one more than the callers or the cores compute at once.
  EXPECT_LE(most.load(), std::max(kCallers, AvailableCores()) + 1);
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
