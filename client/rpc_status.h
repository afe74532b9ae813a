// How RPC failures read: "Backward failed: INVALID_ARGUMENT: logits has 6 values, expected 8",
// followed by a hint when the failure has a usual cause the message does not name (a plaintext
// client talking to a TLS server only hears "Socket closed").
#ifndef GRADSERVE_CLIENT_RPC_STATUS_H_
#define GRADSERVE_CLIENT_RPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace gradserve::client {

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT (gRPC and Abseil share the numbers).
inline std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// A hint for a failure to connect, by what gRPC's message says; empty when there is none.
inline std::string RpcFailureHint(const grpc::Status& status, bool tls) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  const std::string& m = status.error_message();
  if (!tls && (absl::StrContains(m, "Socket closed") || absl::StrContains(m, "Connection reset"))) {
    return "the server closed the connection: is the server using TLS? try --tls or --tls_ca";
  }
  if (tls && absl::StrContains(m, "wrong version number")) {
    return "the server does not speak TLS: is it a plaintext server? try without --tls and --tls_ca";
  }
  if (tls && absl::StrContains(m, "certificate verify failed")) {
    return "the server's certificate is not signed by the CA given (--tls_ca) or the system's roots, "
           "or not for this name (--tls_server_name)";
  }
  return "";
}

// The line printed for a failed call (without "gradserve: "), with the hint on a second line.
inline std::string DescribeRpcFailure(absl::string_view rpc, const grpc::Status& status, bool tls = false) {
  std::string out =
      absl::StrCat(rpc, " failed: ", StatusCodeName(status.error_code()), ": ", status.error_message());
  const std::string hint = RpcFailureHint(status, tls);
  if (!hint.empty()) absl::StrAppend(&out, "\nhint: ", hint);
  return out;
}

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_RPC_STATUS_H_
