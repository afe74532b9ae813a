#include "server/metrics.h"

#include <algorithm>
#include <chrono>

namespace gradserve {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

}  // namespace

const char* RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kForward: return "Forward";
    case Rpc::kBackward: return "Backward";
    case Rpc::kVerifyGradient: return "VerifyGradient";
    case Rpc::kBackwardStream: return "BackwardStream";
  }
  return "unknown";
}

const char* ProtocolName(Protocol p) { return p == Protocol::kGrpc ? "grpc" : "http"; }

const char* RejectionName(Rejection r) {
  return r == Rejection::kMessageSize ? "message_size" : "inflight";
}

int64_t Metrics::NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Metrics::RecordCall(Rpc rpc, Protocol protocol, absl::StatusCode code, int64_t start_nanos,
                         int64_t request_bytes, int64_t response_bytes, int64_t rows) {
  Counters& c = At(rpc, protocol);
  const int code_index = std::clamp(static_cast<int>(code), 0, kStatusCodeCount - 1);
  c.calls[code_index].fetch_add(1, kRelaxed);
  const int64_t nanos = std::max<int64_t>(0, NowNanos() - start_nanos);
  const double seconds = nanos * 1e-9;
  // A bucket counts calls at most its bound (Prometheus's "le"); the last one is +Inf.
  const size_t bucket =
      std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) - kLatencyBuckets.begin();
  c.buckets[bucket].fetch_add(1, kRelaxed);
  c.duration_nanos.fetch_add(static_cast<uint64_t>(nanos), kRelaxed);
  if (request_bytes > 0) c.request_bytes.fetch_add(request_bytes, kRelaxed);
  if (response_bytes > 0) c.response_bytes.fetch_add(response_bytes, kRelaxed);
  if (rows > 0) c.rows.fetch_add(rows, kRelaxed);
}

void Metrics::RecordStreamMessage(int64_t request_bytes, int64_t response_bytes, int64_t rows) {
  Counters& c = At(Rpc::kBackwardStream, Protocol::kGrpc);
  if (request_bytes > 0) c.request_bytes.fetch_add(request_bytes, kRelaxed);
  if (response_bytes > 0) c.response_bytes.fetch_add(response_bytes, kRelaxed);
  if (rows > 0) c.rows.fetch_add(rows, kRelaxed);
}

void Metrics::RecordRejection(Rejection why) {
  rejections_[static_cast<int>(why)].fetch_add(1, kRelaxed);
}

void Metrics::AddInflight(int64_t requests, int64_t bytes) {
  inflight_requests_.fetch_add(requests, kRelaxed);
  inflight_bytes_.fetch_add(bytes, kRelaxed);
}

void Metrics::AddQueued(int64_t requests) { queued_.fetch_add(requests, kRelaxed); }

Metrics::Series Metrics::Read(Rpc rpc, Protocol protocol) const {
  const Counters& c = At(rpc, protocol);
  Series s;
  for (int i = 0; i < kStatusCodeCount; ++i) s.calls[i] = c.calls[i].load(kRelaxed);
  for (size_t i = 0; i < s.buckets.size(); ++i) s.buckets[i] = c.buckets[i].load(kRelaxed);
  s.duration_seconds = c.duration_nanos.load(kRelaxed) * 1e-9;
  s.request_bytes = c.request_bytes.load(kRelaxed);
  s.response_bytes = c.response_bytes.load(kRelaxed);
  s.rows = c.rows.load(kRelaxed);
  return s;
}

uint64_t Metrics::rejections(Rejection why) const {
  return rejections_[static_cast<int>(why)].load(kRelaxed);
}

}  // namespace gradserve
