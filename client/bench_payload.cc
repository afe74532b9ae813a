#include "client/bench_payload.h"

#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/support/slice.h"

namespace gradserve::client {
namespace {

using gradserve::v1::GradientService;

grpc::ByteBuffer Serialize(const google::protobuf::Message& m) {
  const std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Method(absl::string_view name) {
  return absl::StrCat("/", GradientService::service_full_name(), "/", name);
}

}  // namespace

absl::StatusOr<BenchPayload> MakeBenchPayload(const BenchOptions& options) {
  BenchPayload out;
  if (options.rpc == BenchRpc::kHealth) {
    out.method = "/grpc.health.v1.Health/Check";
    out.request = Serialize(grpc::health::v1::HealthCheckRequest());
    return out;
  }
  if (options.batch <= 0 || options.classes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--shape ", options.batch, ",", options.classes,
                                                   ": both must be positive"));
  }
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> logit(-4.0, 4.0);
  std::uniform_int_distribution<int64_t> label(0, options.classes - 1);
  HostTensor logits{{options.batch, options.classes}, {}};
  logits.values.resize(options.batch * options.classes);
  for (double& v : logits.values) v = logit(rng);
  gradserve::v1::Targets targets;
  for (int64_t r = 0; r < options.batch; ++r) targets.mutable_class_indices()->add_values(label(rng));

  TensorFormat format = options.format;
  if (ItemSize(format.dtype) == 0) format.dtype = gradserve::v1::DATA_TYPE_FLOAT64;
  const size_t item = format.encoding == Encoding::kRaw ? ItemSize(format.dtype) : 8;
  out.logits_bytes = static_cast<int64_t>(logits.values.size() * item);
  auto fill = [&](auto* request) {
    EncodeTensor(logits, format, request->mutable_logits());
    *request->mutable_targets() = targets;
  };
  switch (options.rpc) {
    case BenchRpc::kForward: {
      gradserve::v1::ForwardRequest request;
      fill(&request);
      out.method = Method("Forward");
      out.request = Serialize(request);
      break;
    }
    case BenchRpc::kVerify: {
      gradserve::v1::VerifyGradientRequest request;
      fill(&request);
      out.method = Method("VerifyGradient");
      out.request = Serialize(request);
      break;
    }
    default: {
      gradserve::v1::BackwardRequest request;
      fill(&request);
      out.method = Method(options.rpc == BenchRpc::kStream ? "BackwardStream" : "Backward");
      out.request = Serialize(request);
      break;
    }
  }
  return out;
}

}  // namespace gradserve::client
