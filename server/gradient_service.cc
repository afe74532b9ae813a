#include "server/gradient_service.h"

#include <atomic>
#include <chrono>
#include <iostream>
#include <string_view>

#include "absl/strings/str_format.h"
#include "server/limits.h"
#include "server/rpc_logic.h"
#include "server/status_util.h"

namespace gradserve {
namespace {

// Requests at least this large are computed on the pool, not on gRPC's callback threads.
constexpr size_t kOffloadBytes = 256 << 10;

// A request in flight holds itself, its response and working copies of about its size.
constexpr int64_t kInflightFactor = 3;

// Compares without an early exit, so the time taken says nothing about where a guess differs.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// Work cut short by a deadline or a cancellation is worth a line in the log, and so is work that
// ran past its deadline (polling too coarse: the caller had given up): operators see deadlines set
// too short, tests see the work stop. A flood of expiring calls must not flood the log: at most
// one line a second, counting the ones left out.
void Report(const char* what, std::chrono::steady_clock::duration worked) {
  static std::atomic<int64_t> last_ms{-1000000}, left_out{0};
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = last_ms.load();
  if (now_ms - last < 1000 || !last_ms.compare_exchange_strong(last, now_ms)) {
    ++left_out;
    return;
  }
  const int64_t more = left_out.exchange(0);
  std::cout << "gradserve-server: " << what << " after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(worked).count() << " ms of work"
            << (more > 0 ? absl::StrFormat(" (and %d more such events since the last line)", more) : "")
            << std::endl;
}

// A Cancelled status from the library is a deadline when the deadline has passed.
absl::Status Finalize(const grpc::CallbackServerContext& ctx, absl::Status s,
                      std::chrono::steady_clock::time_point started) {
  const auto overrun = std::chrono::system_clock::now() - ctx.deadline();
  const bool past_deadline = overrun >= std::chrono::system_clock::duration::zero();
  const auto worked = std::chrono::steady_clock::now() - started;
  if (s.code() != absl::StatusCode::kCancelled) {
    if (past_deadline && s.ok()) {
      // How far past says whether polling was merely one block late or the deadline was ignored.
      const std::string what = absl::StrFormat(
          "work finished %d ms past its deadline",
          std::chrono::duration_cast<std::chrono::milliseconds>(overrun).count());
      Report(what.c_str(), worked);
    }
    return s;
  }
  Report(past_deadline ? "work stopped at its deadline" : "work stopped: the client cancelled", worked);
  if (past_deadline) return absl::DeadlineExceededError("deadline exceeded while computing; the work was stopped");
  return s;
}

}  // namespace

GradientService::GradientService(const ServerOptions& options)
    : options_(options), pool_(ResolveThreads(options.compute_threads)) {}

absl::Status GradientService::Authenticate(const grpc::CallbackServerContext& ctx) const {
  if (options_.token.empty()) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  const auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "this server requires metadata 'authorization: Bearer <token>', and the call has none");
  }
  const std::string_view given(it->second.data(), it->second.size());
  if (!ConstantTimeEquals(given, "Bearer " + options_.token)) {
    return absl::UnauthenticatedError("the bearer token in 'authorization' metadata is not valid");
  }
  return absl::OkStatus();
}

absl::Status GradientService::AuthenticateHeader(bool present, std::string_view authorization) const {
  if (options_.token.empty()) return absl::OkStatus();
  if (!present) {
    return absl::UnauthenticatedError(
        "this server requires header 'Authorization: Bearer <token>', and the request has none");
  }
  if (!ConstantTimeEquals(authorization, "Bearer " + options_.token)) {
    return absl::UnauthenticatedError("the bearer token in the 'Authorization' header is not valid");
  }
  return absl::OkStatus();
}

absl::Status GradientService::Admit(size_t bytes) {
  if (const absl::Status size = CheckRequestSize(static_cast<int64_t>(bytes), options_.limits);
      !size.ok()) {
    metrics_.RecordRejection(Rejection::kMessageSize);
    return size;
  }
  const int64_t cost = kInflightFactor * static_cast<int64_t>(bytes);
  const int64_t before = inflight_bytes_.fetch_add(cost);
  // A lone request is always admitted, so a limit below one request's cost cannot starve it.
  if (before > 0 && before + cost > options_.limits.max_inflight_bytes) {
    inflight_bytes_.fetch_sub(cost);
    metrics_.RecordRejection(Rejection::kInflight);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "server is busy: %.1f MiB of requests in flight, and this one (%.1f MiB, counted 3x) "
        "would pass the %.0f MiB limit set by --max_inflight_mib; retry later",
        before / 1048576.0, bytes / 1048576.0, options_.limits.max_inflight_bytes / 1048576.0));
  }
  metrics_.AddInflight(1, static_cast<int64_t>(bytes));
  return absl::OkStatus();
}

void GradientService::Release(size_t bytes) {
  inflight_bytes_.fetch_sub(kInflightFactor * static_cast<int64_t>(bytes));
  metrics_.AddInflight(-1, -static_cast<int64_t>(bytes));
}

template <typename Task>
void GradientService::Dispatch(size_t request_bytes, Task task) {
  if (request_bytes >= kOffloadBytes) {
    metrics_.AddQueued(1);
    pool_.Schedule([this, task = std::move(task)]() mutable {
      metrics_.AddQueued(-1);
      task();
    });
  } else {
    task();
  }
}

void GradientService::Run(grpc::CallbackServerContext* ctx, size_t request_bytes,
                          std::function<absl::Status(const ExecContext&)> work,
                          std::function<void(absl::Status)> done) {
  auto task = [this, ctx, work = std::move(work), done = std::move(done)] {
    const auto started = std::chrono::steady_clock::now();
    ExecContext exec;
    exec.max_threads = options_.compute_threads;
    exec.is_cancelled = [ctx] {
      return ctx->IsCancelled() || std::chrono::system_clock::now() >= ctx->deadline();
    };
    done(Finalize(*ctx, work(exec), started));
  };
  Dispatch(request_bytes, std::move(task));
}

void GradientService::Run(size_t request_bytes, std::function<bool()> is_cancelled,
                          std::function<absl::Status(const ExecContext&)> work,
                          std::function<void(absl::Status)> done) {
  auto task = [this, is_cancelled = std::move(is_cancelled), work = std::move(work),
               done = std::move(done)] {
    ExecContext exec;
    exec.max_threads = options_.compute_threads;
    exec.is_cancelled = is_cancelled;
    done(work(exec));
  };
  Dispatch(request_bytes, std::move(task));
}

template <typename Request, typename Response, typename Logic>
grpc::ServerUnaryReactor* GradientService::Unary(Rpc rpc, grpc::CallbackServerContext* ctx,
                                                 const Request* req, Response* resp, Logic logic) {
  const int64_t start = Metrics::NowNanos();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const size_t bytes = req->ByteSizeLong();
  absl::Status admitted = Authenticate(*ctx);
  if (admitted.ok()) admitted = Admit(bytes);
  if (!admitted.ok()) {
    metrics_.RecordCall(rpc, Protocol::kGrpc, admitted.code(), start, bytes, 0, 0);
    reactor->Finish(ToGrpcStatus(admitted));
    return reactor;
  }
  Run(ctx, bytes,
      [this, req, resp, logic](const ExecContext& exec) {
        return logic(*req, resp, options_.limits, exec);
      },
      [this, reactor, bytes, rpc, start, req, resp](absl::Status s) {
        Release(bytes);
        metrics_.RecordCall(rpc, Protocol::kGrpc, s.code(), start, bytes,
                            s.ok() ? resp->ByteSizeLong() : 0, s.ok() ? LogitsRows(req->logits()) : 0);
        reactor->Finish(ToGrpcStatus(s));
      });
  return reactor;
}

grpc::ServerUnaryReactor* GradientService::Forward(grpc::CallbackServerContext* ctx,
                                                   const v1::ForwardRequest* req,
                                                   v1::ForwardResponse* resp) {
  return Unary(Rpc::kForward, ctx, req, resp, RunForward);
}

grpc::ServerUnaryReactor* GradientService::Backward(grpc::CallbackServerContext* ctx,
                                                    const v1::BackwardRequest* req,
                                                    v1::BackwardResponse* resp) {
  return Unary(Rpc::kBackward, ctx, req, resp, RunBackward);
}

grpc::ServerUnaryReactor* GradientService::VerifyGradient(grpc::CallbackServerContext* ctx,
                                                          const v1::VerifyGradientRequest* req,
                                                          v1::VerifyGradientResponse* resp) {
  return Unary(Rpc::kVerifyGradient, ctx, req, resp, RunVerifyGradient);
}

namespace {

// One response per request, in order: the next message is read only after the previous response
// is written, and a bad message finishes the stream with its status after those responses.
class BackwardStreamReactor final
    : public grpc::ServerBidiReactor<v1::BackwardRequest, v1::BackwardResponse> {
 public:
  BackwardStreamReactor(GradientService* service, grpc::CallbackServerContext* ctx, const Limits& limits)
      : service_(service), ctx_(ctx), limits_(limits) {
    const absl::Status s = service_->Authenticate(*ctx_);
    if (!s.ok()) {
      End(s);
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed: every request has its response
      End(absl::OkStatus());
      return;
    }
    const size_t bytes = request_.ByteSizeLong();
    const absl::Status admitted = service_->Admit(bytes);
    if (!admitted.ok()) {
      End(admitted);
      return;
    }
    response_.Clear();
    service_->Run(
        ctx_, bytes,
        [this](const ExecContext& exec) { return RunBackward(request_, &response_, limits_, exec); },
        [this, bytes](absl::Status s) {
          service_->Release(bytes);
          if (s.ok()) {
            service_->metrics().RecordStreamMessage(bytes, response_.ByteSizeLong(),
                                                    LogitsRows(request_.logits()));
            StartWrite(&response_);
          } else {
            End(s);
          }
        });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(absl::CancelledError("the client went away mid-stream"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void End(const absl::Status& s) {
    service_->metrics().RecordCall(Rpc::kBackwardStream, Protocol::kGrpc, s.code(), start_, 0, 0, 0);
    Finish(ToGrpcStatus(s));
  }

  const int64_t start_ = Metrics::NowNanos();
  GradientService* service_;
  grpc::CallbackServerContext* ctx_;
  const Limits& limits_;
  v1::BackwardRequest request_;
  v1::BackwardResponse response_;
};

}  // namespace

grpc::ServerBidiReactor<v1::BackwardRequest, v1::BackwardResponse>* GradientService::BackwardStream(
    grpc::CallbackServerContext* ctx) {
  return new BackwardStreamReactor(this, ctx, options_.limits);
}

}  // namespace gradserve
