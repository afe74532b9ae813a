// How RPC failures read: "Backward failed: INVALID_ARGUMENT: logits has 6 values, expected 8".
#ifndef GRADSERVE_CLIENT_RPC_STATUS_H_
#define GRADSERVE_CLIENT_RPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace gradserve::client {

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT (gRPC and Abseil share the numbers).
inline std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

inline std::string DescribeRpcFailure(absl::string_view rpc, const grpc::Status& status) {
  return absl::StrCat(rpc, " failed: ", StatusCodeName(status.error_code()), ": ", status.error_message());
}

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_RPC_STATUS_H_
