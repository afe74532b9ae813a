#include "lib/parallel.h"

#include <atomic>
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
