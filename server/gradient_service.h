// gradserve.v1.GradientService over gRPC's callback API.
//
// Each handler admits the call (bearer token, message size), runs the RPC's logic (rpc_logic.h)
// on the callback thread for small requests or on the compute pool for large ones, and maps the
// status once. Long work polls the call's cancellation and deadline between blocks of rows.
#ifndef GRADSERVE_SERVER_GRADIENT_SERVICE_H_
#define GRADSERVE_SERVER_GRADIENT_SERVICE_H_

#include <atomic>
#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "lib/parallel.h"
#include "server/compute_pool.h"
#include "server/metrics.h"
#include "server/server_options.h"

namespace gradserve {

class GradientService final : public v1::GradientService::CallbackService {
 public:
  explicit GradientService(const ServerOptions& options);

  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx, const v1::ForwardRequest* req,
                                    v1::ForwardResponse* resp) override;
  grpc::ServerUnaryReactor* Backward(grpc::CallbackServerContext* ctx, const v1::BackwardRequest* req,
                                     v1::BackwardResponse* resp) override;
  grpc::ServerUnaryReactor* VerifyGradient(grpc::CallbackServerContext* ctx,
                                           const v1::VerifyGradientRequest* req,
                                           v1::VerifyGradientResponse* resp) override;
  grpc::ServerBidiReactor<v1::BackwardRequest, v1::BackwardResponse>* BackwardStream(
      grpc::CallbackServerContext* ctx) override;

  // UNAUTHENTICATED unless the call carries the configured bearer token (or none is configured).
  absl::Status Authenticate(const grpc::CallbackServerContext& ctx) const;
  // The same check on an HTTP `Authorization` header's value (`present` false: no header).
  absl::Status AuthenticateHeader(bool present, std::string_view authorization) const;
  // RESOURCE_EXHAUSTED when a request of `bytes` is over --max_message_mib, or when admitting it
  // would put more than --max_inflight_mib in flight. On OK the caller must Release(bytes).
  absl::Status Admit(size_t bytes);
  void Release(size_t bytes);
  // Runs `work` with an ExecContext bound to `ctx`, inline or on the compute pool depending on
  // the request's size, then calls `done` with the final status.
  void Run(grpc::CallbackServerContext* ctx, size_t request_bytes,
           std::function<absl::Status(const ExecContext&)> work,
           std::function<void(absl::Status)> done);
  // The same without a gRPC call, for the HTTP gateway: `is_cancelled` says when to stop.
  void Run(size_t request_bytes, std::function<bool()> is_cancelled,
           std::function<absl::Status(const ExecContext&)> work,
           std::function<void(absl::Status)> done);

  const ServerOptions& options() const { return options_; }
  Metrics& metrics() { return metrics_; }

 private:
  // Runs `task` here for small requests, on the compute pool for big ones.
  template <typename Task>
  void Dispatch(size_t request_bytes, Task task);
  template <typename Request, typename Response, typename Logic>
  grpc::ServerUnaryReactor* Unary(Rpc rpc, grpc::CallbackServerContext* ctx, const Request* req,
                                  Response* resp, Logic logic);

  const ServerOptions options_;
  std::atomic<int64_t> inflight_bytes_{0};
  Metrics metrics_;
  ComputePool pool_;  // big requests, --compute_threads of them at once
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_GRADIENT_SERVICE_H_
