#include "server/compute_pool.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "gtest/gtest.h"
#include "lib/parallel.h"

namespace gradserve {
namespace {

TEST(ComputePoolTest, WorkRunsOnTheProcessComputeThreads) {
  std::atomic<int> on_compute{0}, ran{0};
  {
    ComputePool pool(0);
    for (int i = 0; i < 8; ++i) {
      pool.Schedule([&] {
        if (OnComputeThread()) on_compute.fetch_add(1);
        ran.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(ran.load(), 8);
  EXPECT_EQ(on_compute.load(), 8);
}

TEST(ComputePoolTest, DestructionWaitsForScheduledWork) {
  std::atomic<int> finished{0};
  {
    ComputePool pool(0);
    for (int i = 0; i < 3 * ComputeThreads(); ++i) {
      pool.Schedule([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        finished.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(finished.load(), 3 * ComputeThreads());
}

// In a process of its own (where nothing has started the compute threads): one compute thread
// runs one piece of work at a time. Exits 0 when it did.
void OneComputeThreadRunsOneAtATime() {
  ComputePool pool(1);
  if (ComputeThreads() != 1) std::exit(2);
  std::atomic<int> running{0}, most{0}, done{0};
  for (int i = 0; i < 4; ++i) {
    pool.Schedule([&] {
      const int n = running.fetch_add(1) + 1;
      int m = most.load();
      while (n > m && !most.compare_exchange_weak(m, n)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      running.fetch_sub(1);
      done.fetch_add(1);
    });
  }
  while (done.load() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (SetComputeThreads(2)) std::exit(3);  // started: the number stays
  std::exit(most.load() == 1 ? 0 : 1);
}

TEST(ComputePoolTest, SizesTheComputeThreadsBeforeTheyStart) {
  // "threadsafe" runs the statement in a freshly started copy of this program.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(OneComputeThreadRunsOneAtATime(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace gradserve
