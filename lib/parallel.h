// Row-parallel loops with cooperative cancellation, on the process's one set of compute threads.
//
// Large batches are split across cores; small ones run inline on the caller's thread so that a
// server handling many tiny requests pays no scheduling cost. Long work polls `is_cancelled`
// between blocks of rows so that an abandoned request stops computing.
//
// The process computes on a fixed set of threads, ComputeThreads() of them (the cores, unless
// SetComputeThreads says otherwise). They run tasks given to ScheduleCompute (a server's big
// requests), one per thread, and, when no task waits, help with the blocks of ParallelForRows
// loops. A loop's own thread always works on it and borrows only idle compute threads, so however
// many loops and tasks run at once, at most ComputeThreads() compute threads are busy: 4 big
// requests on 2 cores compute on 2 threads, and one big request alone uses both.
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

// Calls `body(begin, end)` over disjoint ranges covering [0, rows), possibly concurrently: on
// the calling thread and on up to `ctx.max_threads` - 1 idle compute threads. `cost_per_row`
// (roughly the elements a row touches) sizes the blocks. Returns CancelledError if
// `ctx.is_cancelled` fired; the rows not yet visited are then left untouched.
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

// Sets how many compute threads the process has (`threads` <= 0: AvailableCores()). They start
// on first use (a ScheduleCompute, or a ParallelForRows that splits its rows) and then keep
// their number: a later call changes nothing and returns whether the number already is
// `threads`'s.
bool SetComputeThreads(int threads);

// The number of compute threads: SetComputeThreads's, or AvailableCores() by default.
int ComputeThreads();

// Runs `task` on a compute thread, tasks in the order given. A task waits while every compute
// thread runs one; compute threads helping a loop return to the tasks within a block of rows.
// Tasks must not wait for each other (one may wait behind another forever).
void ScheduleCompute(std::function<void()> task);

// Whether the calling thread is one of the compute threads.
bool OnComputeThread();

}  // namespace gradserve

#endif  // GRADSERVE_LIB_PARALLEL_H_
