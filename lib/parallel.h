// Row-parallel loops with cooperative cancellation.
//
// Large batches are split across cores; small ones run inline on the caller's thread so that a
// server handling many tiny requests pays no scheduling cost. Long work polls `is_cancelled`
// between blocks of rows so that an abandoned request stops computing.
//
//   ExecContext ctx{.max_threads = 2, .is_cancelled = [&] { return call->IsCancelled(); }};
//   GRADSERVE_RETURN_IF_ERROR(ParallelForRows(batch, classes, ctx, [&](int64_t b, int64_t e) {
//     for (int64_t i = b; i < e; ++i) DoRow(i);
//   }));
#ifndef GRADSERVE_LIB_PARALLEL_H_
#define GRADSERVE_LIB_PARALLEL_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gradserve {

struct ExecContext {
  // Threads one call may use; 0 means every core the process may run on.
  int max_threads = 0;
  // Polled between blocks of rows; returning true makes the loop stop with CancelledError.
  std::function<bool()> is_cancelled;
};

inline bool IsCancelled(const ExecContext& ctx) { return ctx.is_cancelled && ctx.is_cancelled(); }

// Work below this many (row × cost) units runs on the calling thread: splitting it costs more
// than it saves.
inline constexpr int64_t kMinParallelWork = 1 << 17;

// Calls `body(begin, end)` over disjoint ranges covering [0, rows), possibly concurrently.
// `cost_per_row` (roughly the elements a row touches) sizes the blocks. Returns CancelledError
// if `ctx.is_cancelled` fired; the rows not yet visited are then left untouched.
absl::Status ParallelForRows(int64_t rows, int64_t cost_per_row, const ExecContext& ctx,
                             const std::function<void(int64_t begin, int64_t end)>& body);

// Number of threads ParallelForRows would use for `max_threads`: at most the cores this process
// may use (AvailableCores).
int ResolveThreads(int max_threads);

// Cores this process may use: its CPU affinity, lowered to a container's CPU limit (cgroup v2
// cpu.max) when it has one, since a pod limited to 2 CPUs on a 64-core node would otherwise run
// 64 threads and be throttled.
int AvailableCores();

// The cores a cgroup v2 `cpu.max` value ("QUOTA PERIOD", or "max PERIOD" for no limit) allows,
// rounded up, at most `cores`; `cores` when the text is not a limit.
int CoresUnderCpuMax(absl::string_view cpu_max, int cores);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_PARALLEL_H_
