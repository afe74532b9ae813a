// The one request a bench run sends over and over, serialized once, and the method it goes to.
//
//   absl::StatusOr<BenchPayload> p = MakeBenchPayload(options);
//   stub.UnaryCall(&context, p->method, grpc::StubOptions(), &p->request, &response, done);
#ifndef GRADSERVE_CLIENT_BENCH_PAYLOAD_H_
#define GRADSERVE_CLIENT_BENCH_PAYLOAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/bench.h"
#include "grpcpp/support/byte_buffer.h"

namespace gradserve::client {

struct BenchPayload {
  std::string method;          // "/gradserve.v1.GradientService/Backward"
  grpc::ByteBuffer request;    // the serialized request message
  int64_t logits_bytes = 0;    // what the logits take on the wire
};

// Seeded random logits of options.batch × options.classes with class-index targets (Forward,
// Backward, BackwardStream, VerifyGradient without a candidate), or an empty health check.
// InvalidArgument for a non-positive shape.
absl::StatusOr<BenchPayload> MakeBenchPayload(const BenchOptions& options);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_BENCH_PAYLOAD_H_
