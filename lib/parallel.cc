#include "lib/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

namespace gradserve {

int ResolveThreads(int max_threads) {
  // omp_get_num_procs() asks the kernel for the affinity mask each time: once is enough.
  static const int cores = omp_get_num_procs();
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
    if (ctx.is_cancelled && ctx.is_cancelled()) {
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
