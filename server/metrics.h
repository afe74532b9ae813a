// What the server counts for Prometheus: calls by RPC, protocol and status code, their latency
// histogram, bytes and rows, requests and bytes in flight, and admission refusals.
//
// Recording is a handful of relaxed atomic adds on counters that each (protocol, RPC) pair owns
// on its own cache lines, so the fast path (a tiny Backward, tens of thousands a second) does
// not feel it. The HTTP listener turns a Metrics into the Prometheus text format.
//
//   const int64_t start = Metrics::NowNanos();
//   ... serve the call ...
//   metrics.RecordCall(Rpc::kBackward, Protocol::kGrpc, status.code(), start, in, out, rows);
#ifndef GRADSERVE_SERVER_METRICS_H_
#define GRADSERVE_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve {

enum class Rpc { kForward, kBackward, kVerifyGradient, kBackwardStream };
enum class Protocol { kGrpc, kHttp };
enum class Rejection { kMessageSize, kInflight };

inline constexpr int kRpcCount = 4;
inline constexpr int kProtocolCount = 2;
inline constexpr int kRejectionCount = 2;
inline constexpr int kStatusCodeCount = 17;  // gRPC's codes, OK (0) to UNAUTHENTICATED (16)

// Upper bounds of the latency histogram's buckets, in seconds (+Inf is implied): 100 µs to 30 s.
inline constexpr std::array<double, 17> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};

const char* RpcName(Rpc rpc);            // "Backward": the gRPC method name
const char* ProtocolName(Protocol p);    // "grpc", "http"
const char* RejectionName(Rejection r);  // "message_size", "inflight"

// Rows of a logits tensor, for gradserve_rows_total: [batch, classes] has batch, [classes] one.
inline int64_t LogitsRows(const v1::Tensor& logits) {
  return logits.shape_size() == 2 ? logits.shape(0) : logits.shape_size() == 1 ? 1 : 0;
}

class Metrics {
 public:
  // A monotonic clock reading, for the start of a call.
  static int64_t NowNanos();

  // One finished call (or, for BackwardStream, one finished stream): its status code, the time
  // since `start_nanos`, the bytes it received and sent, and the logits rows it computed.
  void RecordCall(Rpc rpc, Protocol protocol, absl::StatusCode code, int64_t start_nanos,
                  int64_t request_bytes, int64_t response_bytes, int64_t rows);
  // Bytes and rows of one message of a stream (the stream's call is recorded when it ends).
  void RecordStreamMessage(int64_t request_bytes, int64_t response_bytes, int64_t rows);
  void RecordRejection(Rejection why);
  // Admitted requests and their bytes: +1/+bytes on admission, -1/-bytes when they finish.
  void AddInflight(int64_t requests, int64_t bytes);
  // Requests waiting for a compute pool thread.
  void AddQueued(int64_t requests);

  // Reading, for the exposition. Counts are cumulative since the process started.
  struct Series {
    std::array<uint64_t, kStatusCodeCount> calls{};        // by status code
    std::array<uint64_t, kLatencyBuckets.size() + 1> buckets{};  // per bucket, not cumulative
    double duration_seconds = 0;
    uint64_t request_bytes = 0, response_bytes = 0, rows = 0;
  };
  Series Read(Rpc rpc, Protocol protocol) const;
  uint64_t rejections(Rejection why) const;
  int64_t inflight_requests() const { return inflight_requests_.load(std::memory_order_relaxed); }
  int64_t inflight_bytes() const { return inflight_bytes_.load(std::memory_order_relaxed); }
  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Counters {
    std::array<std::atomic<uint64_t>, kStatusCodeCount> calls{};
    std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> buckets{};
    std::atomic<uint64_t> duration_nanos{0};
    std::atomic<uint64_t> request_bytes{0}, response_bytes{0}, rows{0};
  };
  Counters& At(Rpc rpc, Protocol protocol) {
    return counters_[static_cast<int>(protocol)][static_cast<int>(rpc)];
  }
  const Counters& At(Rpc rpc, Protocol protocol) const {
    return counters_[static_cast<int>(protocol)][static_cast<int>(rpc)];
  }

  std::array<std::array<Counters, kRpcCount>, kProtocolCount> counters_;
  std::array<std::atomic<uint64_t>, kRejectionCount> rejections_{};
  alignas(64) std::atomic<int64_t> inflight_requests_{0};
  std::atomic<int64_t> inflight_bytes_{0};
  std::atomic<int64_t> queued_{0};
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_METRICS_H_
