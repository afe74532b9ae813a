// The exit statuses of the `gradserve` command, part of its interface for scripts:
//
//   0  fine
//   1  verify ran and the gradient (or the server's own check) is wrong
//   2  the input is wrong, said by the client (nothing was sent) or by the server: retrying the
//      same command fails again. gRPC codes INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION,
//      UNAUTHENTICATED and PERMISSION_DENIED (a missing or wrong token or certificate is part of
//      what the caller gives), UNIMPLEMENTED (the server does not serve what was asked).
//   3  the call failed and may succeed later: the server is unreachable or unhealthy, or gRPC
//      said UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, CANCELLED, ABORTED, INTERNAL,
//      UNKNOWN or DATA_LOSS.
#ifndef GRADSERVE_CLIENT_EXIT_CODES_H_
#define GRADSERVE_CLIENT_EXIT_CODES_H_

#include "grpcpp/support/status.h"

namespace gradserve::client {

enum ExitCode : int {
  kExitOk = 0,
  kExitVerifyFailed = 1,  // verify ran and the gradient (or the server's own check) is wrong
  kExitUsage = 2,         // the input is wrong (client or server said so): do not retry
  kExitRpcFailed = 3,     // the call failed (transport, deadline, busy...): may be retried
};

// 2 or 3 for a failed call, as above.
inline ExitCode ExitCodeForRpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return kExitUsage;
    default:
      return kExitRpcFailed;
  }
}

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_EXIT_CODES_H_
