// The work of each RPC, free of transport concerns: decode the request, call the library, encode
// the response. Each returns the status the handler maps to gRPC; the response is meaningful
// only when it is OK.
#ifndef GRADSERVE_SERVER_RPC_LOGIC_H_
#define GRADSERVE_SERVER_RPC_LOGIC_H_

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

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_RPC_LOGIC_H_
