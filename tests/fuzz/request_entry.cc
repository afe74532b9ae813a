#include "tests/fuzz/request_entry.h"

#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gradserve/v1/gradserve.pb.h"
#include "server/rpc_logic.h"
#include "tests/tensor_values.h"

namespace gradserve::fuzz {
namespace {

using ::gradserve::testing::TensorValues;

// What an OK response may hold beyond the tensors the handlers size-check: shapes, dtypes,
// scalars, finding messages and the summary.
constexpr int64_t kResponseOverheadBytes = 64 << 10;

// What every OK response must satisfy beyond its size.
std::string CheckResponse(const v1::ForwardResponse& r) {
  // Logits were finite (else INVALID_ARGUMENT): softmax is finite and in [0, 1].
  for (double p : TensorValues(r.probabilities())) {
    if (!(p >= 0.0 && p <= 1.0)) {
      return absl::StrCat("Forward: OK response has probability ", p, "; must be in [0, 1]");
    }
  }
  return "";
}
std::string CheckResponse(const v1::BackwardResponse&) { return ""; }
std::string CheckResponse(const v1::VerifyGradientResponse&) { return ""; }

template <typename Request, typename Response, typename Logic>
std::string Check(const char* rpc, const uint8_t* data, size_t size, Logic logic) {
  Request request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return "";
  Response response;
  const Limits limits = FuzzLimits();
  ExecContext exec;
  exec.max_threads = 1;
  const absl::Status s = logic(request, &response, limits, exec);
  if (s.ok()) {
    const int64_t bytes = static_cast<int64_t>(response.ByteSizeLong());
    if (bytes > limits.max_message_bytes + kResponseOverheadBytes) {
      return absl::StrCat(rpc, ": OK response of ", bytes, " bytes is over the message limit of ",
                          limits.max_message_bytes, " (+", kResponseOverheadBytes, ")");
    }
    return CheckResponse(response);
  }
  if (s.code() != absl::StatusCode::kInvalidArgument &&
      s.code() != absl::StatusCode::kResourceExhausted) {
    return absl::StrCat(rpc, ": status must be INVALID_ARGUMENT or RESOURCE_EXHAUSTED, got ",
                        s.ToString());
  }
  if (s.message().empty()) return absl::StrCat(rpc, ": error without a message: ", s.ToString());
  return "";
}

}  // namespace

Limits FuzzLimits() {
  Limits limits;
  limits.max_message_bytes = int64_t{4} << 20;
  limits.max_elements = int64_t{1} << 16;
  limits.max_jacobian_elements = int64_t{1} << 18;
  limits.max_verify_work = int64_t{1} << 20;
  return limits;
}

std::string CheckRequestInput(const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const uint8_t rpc = data[0] % 3;
  ++data;
  --size;
  switch (rpc) {
    case 0:
      return Check<v1::ForwardRequest, v1::ForwardResponse>("Forward", data, size, RunForward);
    case 1:
      return Check<v1::BackwardRequest, v1::BackwardResponse>("Backward", data, size, RunBackward);
    default:
      return Check<v1::VerifyGradientRequest, v1::VerifyGradientResponse>(
          "VerifyGradient", data, size, RunVerifyGradient);
  }
}

}  // namespace gradserve::fuzz
