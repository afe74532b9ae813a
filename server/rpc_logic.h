// The work of each RPC, free of transport concerns: decode the request, call the library, encode
// the response. Each returns the status the handler maps to gRPC; the response is meaningful
// only when it is OK.
#ifndef GRADSERVE_SERVER_RPC_LOGIC_H_
#define GRADSERVE_SERVER_RPC_LOGIC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "gradserve/v1/gradserve.pb.h"
#include "lib/parallel.h"
#include "server/server_options.h"

namespace gradserve {

absl::Status RunForward(const v1::ForwardRequest& request, v1::ForwardResponse* response,
                        const Limits& limits, const ExecContext& exec);

absl::Status RunBackward(const v1::BackwardRequest& request, v1::BackwardResponse* response,
                         const Limits& limits, const ExecContext& exec);

absl::Status RunVerifyGradient(const v1::VerifyGradientRequest& request,
                               v1::VerifyGradientResponse* response, const Limits& limits,
                               const ExecContext& exec);

// ResourceExhausted when a response of `bytes` would exceed --max_message_mib; checked before
// any work.
absl::Status CheckResponseSize(int64_t bytes, const Limits& limits, const char* what);

// ResourceExhausted when `count` (batch · classes²) exceeds `limit`, naming `flag`.
absl::Status CheckCubicLimit(const char* what, int64_t rows, int64_t classes, int64_t limit,
                             const char* flag);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_RPC_LOGIC_H_
