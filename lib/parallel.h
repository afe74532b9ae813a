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

namespace gradserve {

struct ExecContext {
  // Threads one call may use; 0 means every core the process may run on.
  int max_threads = 0;
  // Polled between blocks of rows; returning true makes the loop stop with CancelledError.
  std::function<bool()> is_cancelled;
};

// Work below this many (row × cost) units runs on the calling thread: splitting it costs more
// than it saves.
inline constexpr int64_t kMinParallelWork = 1 << 17;

// Calls `body(begin, end)` over disjoint ranges covering [0, rows), possibly concurrently.
// `cost_per_row` (roughly the elements a row touches) sizes the blocks. Returns CancelledError
// if `ctx.is_cancelled` fired; the rows not yet visited are then left untouched.
absl::Status ParallelForRows(int64_t rows, int64_t cost_per_row, const ExecContext& ctx,
                             const std::function<void(int64_t begin, int64_t end)>& body);

// Number of threads ParallelForRows would use for `max_threads`.
int ResolveThreads(int max_threads);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_PARALLEL_H_
