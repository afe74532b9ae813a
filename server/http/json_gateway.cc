#include "server/http/json_gateway.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/http/json_tensors.h"
#include "server/rpc_logic.h"

namespace gradserve {
namespace {

template <typename Request, typename Response, typename Logic>
JsonAnswer Serve(GradientService& service, Logic logic, const std::string& body,
                 std::optional<absl::Time> deadline) {
  JsonAnswer answer;
  answer.status = service.Admit(body.size());
  if (!answer.status.ok()) return answer;
  Request request;
  Response response;
  answer.status = ParseJsonMessage(body, &request);
  if (!answer.status.ok()) {
    answer.status = absl::InvalidArgumentError(
        absl::StrCat("the body is not a ", Request::descriptor()->full_name(),
                     " in protobuf's JSON mapping: ", answer.status.message()));
  } else {
    std::function<bool()> is_cancelled;
    if (deadline) is_cancelled = [d = *deadline] { return absl::Now() >= d; };
    // Small requests run right here, big ones on the compute pool; either way this HTTP
    // thread waits, as a gRPC call waits for its reactor.
    absl::Notification finished;
    service.Run(
        body.size(), std::move(is_cancelled),
        [&](const ExecContext& exec) { return logic(request, &response, service.options().limits, exec); },
        [&](absl::Status s) {
          answer.status = std::move(s);
          finished.Notify();
        });
    finished.WaitForNotification();
    if (answer.status.code() == absl::StatusCode::kCancelled && deadline && absl::Now() >= *deadline) {
      answer.status = absl::DeadlineExceededError("deadline exceeded while computing; the work was stopped");
    }
  }
  if (answer.status.ok()) {
    answer.rows = LogitsRows(request.logits());
    answer.status = PrintJsonMessage(&response, &answer.json);
  }
  service.Release(body.size());
  return answer;
}

}  // namespace

JsonAnswer ServeJson(GradientService& service, Rpc rpc, const std::string& body,
                     std::optional<absl::Time> deadline) {
  switch (rpc) {
    case Rpc::kForward:
      return Serve<v1::ForwardRequest, v1::ForwardResponse>(service, RunForward, body, deadline);
    case Rpc::kBackward:
      return Serve<v1::BackwardRequest, v1::BackwardResponse>(service, RunBackward, body, deadline);
    case Rpc::kVerifyGradient:
      return Serve<v1::VerifyGradientRequest, v1::VerifyGradientResponse>(service, RunVerifyGradient,
                                                                         body, deadline);
    case Rpc::kBackwardStream: break;
  }
  return {absl::UnimplementedError("BackwardStream has no HTTP form; send one /v1/backward per request")};
}

absl::StatusOr<std::optional<absl::Time>> DeadlineFromTimeout(const std::string& grpc_timeout) {
  if (grpc_timeout.empty()) return std::nullopt;
  const std::string digits = grpc_timeout.substr(0, grpc_timeout.size() - 1);
  int64_t amount = 0;
  if (digits.empty() || digits.size() > 8 || !absl::SimpleAtoi(digits, &amount) || amount < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Grpc-Timeout \"", grpc_timeout, "\" is not 1 to 8 digits followed by a unit (H M S m u n)"));
  }
  absl::Duration unit;
  switch (grpc_timeout.back()) {
    case 'H': unit = absl::Hours(1); break;
    case 'M': unit = absl::Minutes(1); break;
    case 'S': unit = absl::Seconds(1); break;
    case 'm': unit = absl::Milliseconds(1); break;
    case 'u': unit = absl::Microseconds(1); break;
    case 'n': unit = absl::Nanoseconds(1); break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "Grpc-Timeout \"", grpc_timeout, "\" ends in '", grpc_timeout.substr(grpc_timeout.size() - 1),
          "', not one of the units H M S m u n"));
  }
  return absl::Now() + amount * unit;
}

}  // namespace gradserve
