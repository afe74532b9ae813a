#include "client/commands.h"

#include <future>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/bench_report.h"
#include "client/chunked.h"
#include "client/exit_codes.h"
#include "client/output_file.h"
#include "client/response_json.h"
#include "client/response_text.h"
#include "client/rpc_status.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/generic/generic_stub.h"

namespace gradserve::client {
namespace {

using gradserve::v1::GradientService;

int UsageError(std::ostream& err, absl::string_view message) {
  err << "gradserve: " << message << "\n";
  return kExitUsage;
}

// --output and --output-field, checked before any call so a typo costs no RPC.
absl::Status CheckOutputFlags(const google::protobuf::Descriptor* type, absl::string_view main_tensor,
                              const OutputOptions& output) {
  if (!output.path.empty()) return CheckOutput(type, output.field.empty() ? main_tensor : output.field, output.path);
  if (!output.field.empty()) return absl::InvalidArgumentError("--output-field needs --output FILE");
  return absl::OkStatus();
}

// The shared shape of forward, backward and verify: check the output flags, call, print, write.
// `call` makes the RPC; `text` renders the table; the response's exit status comes from
// `exit_status`.
template <typename Request, typename Response, typename Call, typename Text, typename ExitStatus>
int RunUnary(const ConnectionOptions& conn, absl::string_view rpc,
             const absl::StatusOr<Request>& request, absl::string_view main_tensor,
             const OutputOptions& output, Call call, Text text, ExitStatus exit_status,
             std::ostream& out, std::ostream& err) {
  if (!request.ok()) return UsageError(err, request.status().message());
  const std::string field = output.field.empty() ? std::string(main_tensor) : output.field;
  absl::Status checked = CheckOutputFlags(Response::descriptor(), main_tensor, output);
  if (!checked.ok()) return UsageError(err, checked.message());
  std::unique_ptr<GradientService::Stub> stub = GradientService::NewStub(CreateChannel(conn));
  grpc::ClientContext context;
  PrepareContext(conn, &context);
  Response response;
  const grpc::Status status = call(*stub, &context, *request, &response);
  if (!status.ok()) {
    err << "gradserve: " << DescribeRpcFailure(rpc, status, conn.tls) << "\n";
    return ExitCodeForRpc(status.error_code());
  }
  if (!output.path.empty()) {
    absl::Status written = WriteResponseTensor(response, field, output.path);
    if (!written.ok()) return UsageError(err, written.message());
    // The tensor is in the file: JSON carries the rest (a [128, 128000] gradient printed as
    // numbers took 24 s and 5.7 GB). Tables elide big tensors and need every field they show.
    if (output.format == OutputFormat::kJson) {
      response.GetReflection()->ClearField(&response, Response::descriptor()->FindFieldByName(field));
    }
  }
  absl::StatusOr<std::string> printed = output.format == OutputFormat::kJson ? ResponseJson(response)
                                                                             : text(response);
  if (!printed.ok()) {
    err << "gradserve: " << rpc << " returned a malformed " << printed.status().message() << "\n";
    return kExitRpcFailed;
  }
  out << *printed;
  return exit_status(response);
}

}  // namespace

int RunForward(const ConnectionOptions& conn, const ForwardInputs& in, const OutputOptions& output,
               const ChunkOptions& chunks, std::ostream& out, std::ostream& err) {
  using gradserve::v1::ForwardRequest;
  using gradserve::v1::ForwardResponse;
  absl::Status checked = CheckOutputFlags(ForwardResponse::descriptor(), "probabilities", output);
  if (!checked.ok()) return UsageError(err, checked.message());
  if (std::optional<int> code = RunForwardChunked(conn, in, output, chunks, out, err)) return *code;
  return RunUnary<ForwardRequest, ForwardResponse>(
      conn, "Forward", BuildForwardRequest(in), "probabilities", output,
      [](GradientService::Stub& stub, grpc::ClientContext* c, const ForwardRequest& q, ForwardResponse* r) {
        return stub.Forward(c, q, r);
      },
      [&output](const ForwardResponse& r) { return ForwardText(r, output.style); },
      [](const ForwardResponse&) { return kExitOk; }, out, err);
}

int RunBackward(const ConnectionOptions& conn, const BackwardInputs& in, const OutputOptions& output,
                const ChunkOptions& chunks, std::ostream& out, std::ostream& err) {
  using gradserve::v1::BackwardRequest;
  using gradserve::v1::BackwardResponse;
  absl::Status checked = CheckOutputFlags(BackwardResponse::descriptor(), "grad_logits", output);
  if (!checked.ok()) return UsageError(err, checked.message());
  if (std::optional<int> code = RunBackwardChunked(conn, in, output, chunks, out, err)) return *code;
  return RunUnary<BackwardRequest, BackwardResponse>(
      conn, "Backward", BuildBackwardRequest(in), "grad_logits", output,
      [](GradientService::Stub& stub, grpc::ClientContext* c, const BackwardRequest& q, BackwardResponse* r) {
        return stub.Backward(c, q, r);
      },
      [&output](const BackwardResponse& r) { return BackwardText(r, output.style); },
      [](const BackwardResponse&) { return kExitOk; }, out, err);
}

int RunVerify(const ConnectionOptions& conn, const VerifyInputs& in, const OutputOptions& output,
              std::ostream& out, std::ostream& err) {
  using gradserve::v1::VerifyGradientRequest;
  using gradserve::v1::VerifyGradientResponse;
  const absl::StatusOr<VerifyGradientRequest> request = BuildVerifyRequest(in);
  return RunUnary<VerifyGradientRequest, VerifyGradientResponse>(
      conn, "VerifyGradient", request, "analytic_grad", output,
      [](GradientService::Stub& stub, grpc::ClientContext* c, const VerifyGradientRequest& q,
         VerifyGradientResponse* r) { return stub.VerifyGradient(c, q, r); },
      [&](const VerifyGradientResponse& r) { return VerifyText(*request, r, output.style); },
      [](const VerifyGradientResponse& r) { return r.ok() ? kExitOk : kExitVerifyFailed; }, out, err);
}

int RunHealth(const ConnectionOptions& conn, const std::string& service, OutputFormat format,
              std::ostream& out, std::ostream& err) {
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  // The health proto's messages are in gradserve::proto but not its stub: a generic stub over
  // the messages needs no generated service code.
  grpc::TemplatedGenericStub<HealthCheckRequest, HealthCheckResponse> stub(CreateChannel(conn));
  grpc::ClientContext context;
  PrepareContext(conn, &context);
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    err << "gradserve: " << DescribeRpcFailure("Health/Check", status, conn.tls) << "\n";
    return kExitRpcFailed;
  }
  const std::string name = HealthCheckResponse::ServingStatus_Name(response.status());
  if (format == OutputFormat::kJson) {
    out << ResponseJson(response).value_or("{}\n");
  } else {
    out << (service.empty() ? "server" : service) << ": " << name << "\n";
  }
  if (response.status() == HealthCheckResponse::SERVING) return kExitOk;
  err << "gradserve: health: " << name << "\n";
  return kExitRpcFailed;
}

int RunBenchCommand(const ConnectionOptions& conn, const BenchOptions& options, OutputFormat format,
                    bool live_progress, std::ostream& out, std::ostream& err) {
  BenchProgress progress;
  if (live_progress) {
    progress = [&err](int64_t requests, int64_t errors, double seconds) {
      err << absl::StrFormat("\r%.1f s  %d requests  %.0f qps  %d errors\x1b[K", seconds, requests,
                             seconds > 0 ? requests / seconds : 0.0, errors)
          << std::flush;
    };
  }
  absl::StatusOr<BenchResult> result = RunBench(conn, options, progress);
  if (progress) err << "\r\x1b[K" << std::flush;
  if (!result.ok()) {
    err << "gradserve: bench: " << result.status().message() << "\n";
    return result.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitRpcFailed;
  }
  const BenchSummary summary = Summarize(*result);
  out << (format == OutputFormat::kJson ? BenchJson(summary, options, conn.target)
                                        : BenchTable(summary, options, conn.target));
  if (summary.errors > 0) {
    err << "gradserve: bench: " << summary.errors << " of " << summary.requests << " calls failed, the first with "
        << summary.first_error << "\n";
    return kExitRpcFailed;
  }
  return kExitOk;
}

}  // namespace gradserve::client
