// Request limits checked before any work, each naming the flag that sets it.
#ifndef GRADSERVE_SERVER_LIMITS_H_
#define GRADSERVE_SERVER_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "server/server_options.h"

namespace gradserve {

// What a caller can do about a message over --max_message_mib, appended to those refusals: send
// half precision, split the batch, stream the parts, or raise the flag.
extern const char kMessageSizeRemedies[];

// ResourceExhausted when a response of `bytes` (`what` it holds) would exceed --max_message_mib.
absl::Status CheckResponseSize(int64_t bytes, const Limits& limits, const char* what);

// ResourceExhausted when a request of `bytes` exceeds --max_message_mib, else OK.
absl::Status CheckRequestSize(int64_t bytes, const Limits& limits);

// ResourceExhausted when batch · classes² (`what` needs) exceeds `limit`, set by `flag`.
absl::Status CheckCubicLimit(const char* what, int64_t rows, int64_t classes, int64_t limit,
                             const char* flag);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_LIMITS_H_
