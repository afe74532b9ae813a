// The load generator behind `gradserve bench`: K callers, each keeping exactly one call (or one
// stream message) in flight until a request count or a duration is reached.
//
// It is built not to be the bottleneck: the request is generated and serialized once and every
// call sends the same bytes (no per-call protobuf work, responses are not parsed); calls run on
// gRPC's callback API, so K callers need no K threads; a caller starts its next call from the
// completion of the previous one, so the number in flight stays K.
//
//   BenchOptions options;
//   options.rpc = BenchRpc::kBackward; options.batch = 64; options.classes = 1000;
//   absl::StatusOr<BenchResult> result = RunBench(conn, options, /*progress=*/nullptr);
#ifndef GRADSERVE_CLIENT_BENCH_H_
#define GRADSERVE_CLIENT_BENCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/tensor_codec.h"

namespace gradserve::client {

enum class BenchRpc { kForward, kBackward, kVerify, kStream, kHealth };

struct BenchOptions {
  BenchRpc rpc = BenchRpc::kBackward;
  int64_t batch = 1;      // logits are [batch, classes], uniform in [-4, 4], seeded
  int64_t classes = 10;
  TensorFormat format;    // dtype and encoding of the logits
  int concurrency = 8;    // calls (or stream messages) in flight
  int connections = 1;    // separate TCP connections the callers are spread over
  absl::Duration duration = absl::Seconds(5);
  int64_t requests = 0;   // > 0: stop after this many calls instead of after `duration`
  uint64_t seed = 1;
};

struct BenchResult {
  int64_t requests = 0;  // calls answered, errors included
  int64_t errors = 0;
  double seconds = 0;    // from the first call's start to the last one's end
  std::vector<double> latencies_ms;  // of the successful calls, sorted ascending
  int64_t logits_bytes_per_request = 0;  // of the logits on the wire (0 for health)
  std::string first_error;               // "INVALID_ARGUMENT: ..." when errors > 0
};

// Called about twice a second from a helper thread while the run lasts.
using BenchProgress = std::function<void(int64_t requests, int64_t errors, double seconds)>;

// UNAVAILABLE when the target cannot be reached within `conn.timeout` (nothing is measured
// then); otherwise the result, failed calls counted in `errors`.
absl::StatusOr<BenchResult> RunBench(const ConnectionOptions& conn, const BenchOptions& options,
                                     const BenchProgress& progress);

// "backward", "stream", ...: the names `--rpc` takes and the reports print.
std::string BenchRpcName(BenchRpc rpc);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_BENCH_H_
