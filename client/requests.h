// Builds ForwardRequest, BackwardRequest and VerifyGradientRequest from what the user typed.
//
// The Inputs structs hold the flags' text as given (inline numbers or file names) plus typed
// options; Build* reads the files, fits shapes and encodes every tensor in one dtype (--dtype, else
// the logits' own: a float32 .npy is sent as float32, inline and CSV numbers as float64) and
// encoding. Errors are InvalidArgument and name the flag, file, line and column: the CLI prints
// them and exits 2 without sending anything.
//
//   VerifyInputs in;
//   in.loss.logits = "1.75,1.75"; in.loss.target_probs = "0,1"; in.candidate = "6.125,2.625";
//   absl::StatusOr<gradserve::v1::VerifyGradientRequest> request = BuildVerifyRequest(in);
#ifndef GRADSERVE_CLIENT_REQUESTS_H_
#define GRADSERVE_CLIENT_REQUESTS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/tensor_codec.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

// The inputs every loss RPC shares.
struct LossInputs {
  std::string logits;        // required
  std::string labels;        // class indices, or ...
  std::string target_probs;  // ... probability targets (same shape as logits)
  std::string weights;       // one per class; empty: all 1
  gradserve::v1::Reduction reduction = gradserve::v1::REDUCTION_UNSPECIFIED;  // MEAN
  double label_smoothing = 0;
  std::optional<int64_t> ignore_index;
  TensorFormat format;       // dtype (UNSPECIFIED: the logits') and encoding of every tensor sent
};

struct ForwardInputs {
  LossInputs loss;
  bool log_probabilities = false;
};

struct BackwardInputs {
  LossInputs loss;
  std::string grad_probs;  // instead of targets: an upstream dL/dA
  std::string grad_loss;   // upstream dL/dloss; empty: 1
  gradserve::v1::Method method = gradserve::v1::METHOD_UNSPECIFIED;
  bool jacobian = false;
  bool probabilities = false;
};

struct VerifyInputs {
  LossInputs loss;
  std::string candidate;           // the dL/dZ to check
  std::string candidate_jacobian;  // [batch, classes, classes], or [batch·classes, classes] rows
  double epsilon = 0, rtol = 0, atol = 0;  // 0: the server's defaults
  gradserve::v1::NumericMethod numeric_method = gradserve::v1::NUMERIC_METHOD_UNSPECIFIED;
};

absl::StatusOr<gradserve::v1::ForwardRequest> BuildForwardRequest(const ForwardInputs& in);
absl::StatusOr<gradserve::v1::BackwardRequest> BuildBackwardRequest(const BackwardInputs& in);
absl::StatusOr<gradserve::v1::VerifyGradientRequest> BuildVerifyRequest(const VerifyInputs& in);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_REQUESTS_H_
