// POST /v1/forward, /v1/backward and /v1/verify: the request message in protobuf's JSON mapping
// in, the response message in the same mapping out, through the very calls the gRPC handlers
// make (admission, the RPC's logic, the compute pool), so both protocols answer alike.
//
//   JsonAnswer a = ServeJson(service, Rpc::kBackward, body, deadline);
//   // a.status is OK and a.json the BackwardResponse, or a.status says why not
#ifndef GRADSERVE_SERVER_HTTP_JSON_GATEWAY_H_
#define GRADSERVE_SERVER_HTTP_JSON_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/gradient_service.h"
#include "server/metrics.h"

namespace gradserve {

// The most memory an HTTP thread keeps for reuse by its next call, per buffer (the body, the
// messages, the printed answer); a bigger call's buffer is freed after it.
inline constexpr size_t kKeptBytesPerThread = size_t{16} << 20;

struct JsonAnswer {
  absl::Status status;
  // The response message when status is OK, in memory of the calling thread that stays valid
  // until the thread's next ServeJson.
  std::string_view json;
  int64_t rows = 0;  // logits rows computed, for gradserve_rows_total
};

// Admits `body` (its size, against --max_message_mib and --max_inflight_mib), parses it as the
// RPC's request (unknown fields are INVALID_ARGUMENT), runs the RPC until `deadline` or until
// `client_gone` (when given, polled while computing) says the caller left (CANCELLED), and prints
// the response with the proto's field names and every field present. The caller authenticates.
JsonAnswer ServeJson(GradientService& service, Rpc rpc, const std::string& body,
                     std::optional<absl::Time> deadline, std::function<bool()> client_gone = nullptr);

// The deadline a gRPC-style "Grpc-Timeout" header sets (grpc-gateway honours the same header):
// digits then a unit, H M S m u n, e.g. "500m". Empty: no deadline.
absl::StatusOr<std::optional<absl::Time>> DeadlineFromTimeout(const std::string& grpc_timeout);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_JSON_GATEWAY_H_
