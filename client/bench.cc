#include "client/bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/bench_payload.h"
#include "client/rpc_status.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/client_callback.h"

namespace gradserve::client {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// What the callers share: the budget of calls, the counters, each caller's latencies, and the
// wait for the last caller to stop.
class BenchRun {
 public:
  BenchRun(const BenchOptions& options, const BenchPayload& payload, const ConnectionOptions& conn)
      : options_(options), payload_(payload), conn_(conn), latencies_(options.concurrency) {
    active_ = options.concurrency;
  }

  void Begin() {
    start_ = Clock::now();
    end_ = start_ + absl::ToChronoNanoseconds(options_.duration);
  }

  // True when the caller may start one more call; each true is one call of the budget.
  bool TakeTicket() {
    if (options_.requests > 0) return issued_.fetch_add(1, std::memory_order_relaxed) < options_.requests;
    return Clock::now() < end_;
  }

  // A call of caller `slot` ended. Only that caller writes its latency vector, and it has one
  // call in flight at a time, so the vector needs no lock.
  void Record(int slot, const grpc::Status& status, double ms) {
    if (status.ok()) {
      latencies_[slot].push_back(ms);
    } else if (errors_.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      first_error_ = absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message());
    }
    completed_.fetch_add(1, std::memory_order_relaxed);
  }

  // The caller's last act: nothing of it may be touched after this returns.
  void CallerDone() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--active_ == 0) {
      finished_ = Clock::now();
      done_.notify_all();
    }
  }

  // Blocks until every caller is done, reporting progress every half second.
  void Wait(const BenchProgress& progress) {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_.wait_for(lock, std::chrono::milliseconds(500), [this] { return active_ == 0; })) {
      if (progress) progress(completed_.load(), errors_.load(), MillisecondsSince(start_) / 1e3);
    }
  }

  BenchResult Result() {
    std::lock_guard<std::mutex> lock(mu_);
    BenchResult r;
    r.requests = completed_.load();
    r.errors = errors_.load();
    r.seconds = std::chrono::duration<double>(finished_ - start_).count();
    for (const auto& slot : latencies_) r.latencies_ms.insert(r.latencies_ms.end(), slot.begin(), slot.end());
    std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
    r.logits_bytes_per_request = payload_.logits_bytes;
    r.first_error = first_error_;
    return r;
  }

  const BenchOptions& options() const { return options_; }
  const BenchPayload& payload() const { return payload_; }
  const ConnectionOptions& conn() const { return conn_; }

 private:
  const BenchOptions options_;
  const BenchPayload& payload_;
  const ConnectionOptions conn_;
  Clock::time_point start_, end_, finished_;
  std::atomic<int64_t> issued_{0}, completed_{0}, errors_{0};
  std::vector<std::vector<double>> latencies_;
  std::mutex mu_;
  std::condition_variable done_;
  int active_;
  std::string first_error_;
};

// One caller of a unary RPC: each completion records its latency and starts the next call.
class UnaryCaller {
 public:
  UnaryCaller(BenchRun* run, grpc::GenericStub* stub, int slot)
      : run_(run), stub_(stub), slot_(slot), request_(run->payload().request) {}

  void Next() {
    if (!run_->TakeTicket()) {
      run_->CallerDone();
      return;
    }
    // A context serves one call; the previous one's call is complete (its callback is running).
    context_ = std::make_unique<grpc::ClientContext>();
    PrepareContext(run_->conn(), context_.get());
    response_.Clear();
    start_ = Clock::now();
    stub_->UnaryCall(context_.get(), run_->payload().method, grpc::StubOptions(), &request_, &response_,
                     [this](grpc::Status status) {
                       run_->Record(slot_, status, MillisecondsSince(start_));
                       Next();
                     });
  }

 private:
  BenchRun* const run_;
  grpc::GenericStub* const stub_;
  const int slot_;
  grpc::ByteBuffer request_;  // this caller's reference to the shared serialized bytes
  grpc::ByteBuffer response_;
  std::unique_ptr<grpc::ClientContext> context_;
  Clock::time_point start_;
};

// One caller over BackwardStream: writes a message, waits for its answer, writes the next. A
// stream that fails is replaced by a new one while the budget lasts, so K stay in flight.
// Owns itself: deleted in OnDone.
class StreamCaller : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCaller(BenchRun* run, grpc::GenericStub* stub, int slot)
      : run_(run), stub_(stub), slot_(slot), request_(run->payload().request) {
    // A stream lives for the whole run: its deadline is the run's length plus --timeout, or none
    // when the run is a number of requests.
    ConnectionOptions stream_conn = run->conn();
    stream_conn.timeout = run->options().requests > 0 ? absl::ZeroDuration()
                                                       : run->options().duration + stream_conn.timeout;
    PrepareContext(stream_conn, &context_);
  }

  void Start() {
    stub_->PrepareBidiStreamingCall(&context_, run_->payload().method, grpc::StubOptions(), this);
    StartCall();
    Next();
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      in_flight_ = false;
      run_->Record(slot_, grpc::Status::OK, MillisecondsSince(start_));
    }
    Settle(ok);
  }
  void OnWriteDone(bool ok) override { Settle(ok); }

  void OnDone(const grpc::Status& status) override {
    if (in_flight_) {  // the message written last got no answer: the stream's error is its error
      run_->Record(slot_, status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "stream ended without an answer")
                                      : status,
                   MillisecondsSince(start_));
    }
    BenchRun* run = run_;
    grpc::GenericStub* stub = stub_;
    const int slot = slot_;
    const bool replace = broken_ && !status.ok();
    delete this;
    if (replace) {
      (new StreamCaller(run, stub, slot))->Start();
    } else {
      run->CallerDone();
    }
  }

 private:
  // The next message goes out once both the write and the read of the last one are done (their
  // reactions may come in either order, even at once on two threads).
  void Settle(bool ok) {
    if (!ok) broken_ = true;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1 && !broken_) Next();
  }

  void Next() {
    if (!run_->TakeTicket()) {
      StartWritesDone();
      return;
    }
    in_flight_ = true;
    pending_.store(2, std::memory_order_relaxed);
    response_.Clear();
    start_ = Clock::now();
    StartRead(&response_);
    StartWrite(&request_);
  }

  BenchRun* const run_;
  grpc::GenericStub* const stub_;
  const int slot_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  Clock::time_point start_;
  std::atomic<int> pending_{0};
  std::atomic<bool> broken_{false};
  bool in_flight_ = false;
};

}  // namespace

std::string BenchRpcName(BenchRpc rpc) {
  switch (rpc) {
    case BenchRpc::kForward: return "forward";
    case BenchRpc::kBackward: return "backward";
    case BenchRpc::kVerify: return "verify";
    case BenchRpc::kStream: return "stream";
    case BenchRpc::kHealth: return "health";
  }
  return "?";
}

absl::StatusOr<BenchResult> RunBench(const ConnectionOptions& conn, const BenchOptions& options,
                                     const BenchProgress& progress) {
  if (options.concurrency < 1 || options.connections < 1) {
    return absl::InvalidArgumentError("--concurrency and --connections must be at least 1");
  }
  absl::StatusOr<BenchPayload> payload = MakeBenchPayload(options);
  if (!payload.ok()) return payload.status();

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < options.connections; ++c) {
    channels.push_back(CreateChannel(conn, /*own_connection=*/options.connections > 1));
    // Connect first, so that connection setup is not measured as the first calls' latency.
    const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(
        conn.timeout > absl::ZeroDuration() ? conn.timeout : absl::Seconds(30));
    if (!channels.back()->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", conn.target));
    }
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }

  BenchRun run(options, *payload, conn);
  std::vector<std::unique_ptr<UnaryCaller>> unary;
  run.Begin();
  for (int k = 0; k < options.concurrency; ++k) {
    grpc::GenericStub* stub = stubs[k % stubs.size()].get();
    if (options.rpc == BenchRpc::kStream) {
      (new StreamCaller(&run, stub, k))->Start();
    } else {
      unary.push_back(std::make_unique<UnaryCaller>(&run, stub, k));
      unary.back()->Next();
    }
  }
  run.Wait(progress);
  return run.Result();
}

}  // namespace gradserve::client
