#include "lib/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace gradserve {

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
    const int affinity = omp_get_num_procs();
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
  auto run_block = [&](int64_t b) {
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
    // Static contiguous chunks: each thread streams through adjacent rows.
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < blocks; ++b) run_block(b);
  }
  if (cancelled.load()) return absl::CancelledError("computation cancelled by the caller");
  return absl::OkStatus();
}

}  // namespace gradserve
