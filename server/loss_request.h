// Decodes the loss part shared by Forward, Backward and VerifyGradient requests (logits, targets,
// options) into the library's inputs over the request's own bytes. T is the compute type: float
// or double, or uint16_t for a half-precision request (the logits' FLOAT16 / BFLOAT16 bit
// patterns; its inputs are HalfPassInputs, every float input rounded to that type).
//
// Decoding checks what only the wire shows: ranks, and that each tensor's shape is the one the
// logits imply. What the values mean (classes, ids, probabilities, options) is checked once, by
// the library's validator (lib/loss_check.h), inside the library call that uses them.
#ifndef GRADSERVE_SERVER_LOSS_REQUEST_H_
#define GRADSERVE_SERVER_LOSS_REQUEST_H_

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "gradserve/v1/gradserve.pb.h"
#include "lib/cross_entropy.h"
#include "lib/half_rows.h"
#include "lib/loss_pass.h"
#include "server/server_options.h"
#include "server/tensor_codec.h"

namespace gradserve {

// True when `targets` is present and has a kind set.
bool HasTargets(bool has_field, const v1::Targets& targets);

// True when any field of `options` differs from its default.
bool HasNonDefaultOptions(const v1::LossOptions& options);

// The library's pass types for a compute type T; Upstream is the type grad_loss is given in.
template <typename T>
struct PassTypes {
  using Inputs = LossPassInputs<T>;
  using Outputs = LossPassOutputs<T>;
  using Upstream = T;
};
template <>
struct PassTypes<uint16_t> {
  using Inputs = HalfPassInputs;
  using Outputs = HalfPassOutputs;
  using Upstream = float;  // half inputs are widened
};

// The library's one pass (LossPass or HalfLossPass) for either kind of inputs.
template <typename T>
absl::StatusOr<LossSummary> RunLossPass(const LossPassInputs<T>& in, const LossPassOutputs<T>& out,
                                        const ExecContext& exec) {
  return LossPass<T>(in, out, exec);
}
inline absl::StatusOr<LossSummary> RunLossPass(const HalfPassInputs& in, const HalfPassOutputs& out,
                                               const ExecContext& exec) {
  return HalfLossPass(in, out, exec);
}

template <typename T>
class LossRequest {
 public:
  using Upstream = typename PassTypes<T>::Upstream;

  // `targets` may be null (Forward without targets, Backward with grad_probabilities).
  static absl::StatusOr<LossRequest> Decode(const v1::Tensor& logits, const v1::Targets* targets,
                                            const v1::LossOptions& options, const Limits& limits);

  // The problem; valid while the request and this object live.
  template <typename U = T, typename = std::enable_if_t<!std::is_same_v<U, uint16_t>>>
  LossProblem<T> problem() const {
    return {logits(),
            probability_targets_
                ? Targets<T>::Probabilities(ConstMatrixMap<T>(probabilities_.data(), rows_, classes_))
                : Targets<T>::ClassIndices(class_indices_),
            options_};
  }
  // The same for a half-precision request (T = uint16_t).
  template <typename U = T, typename = std::enable_if_t<std::is_same_v<U, uint16_t>>>
  HalfLossProblem half_problem() const {
    return {*half_, logits(),
            probability_targets_
                ? HalfTargets::Probabilities(HalfMatrix(probabilities_.data(), rows_, classes_))
                : HalfTargets::ClassIndices(class_indices_),
            options_};
  }
  // The inputs of the library's pass: this request's logits, targets (when it has them) and
  // options, with an upstream dL/dloss or dL/dA and the method.
  typename PassTypes<T>::Inputs PassInputs(absl::Span<const Upstream> grad_loss,
                                           ConstMatrixMap<T> grad_probabilities,
                                           Method method) const;
  // Another input of the request (grad_probabilities, grad_loss), decoded as the logits are.
  absl::StatusOr<InputTensor<T>> DecodeInput(const v1::Tensor& t, const char* name,
                                             const Limits& limits) const;
  // The half type outputs are rounded to (FLOAT16 for a float or double request, unused there).
  HalfType output_half() const { return half_.value_or(HalfType::kFloat16); }
  HalfType half_type() const { return *half_; }
  ConstMatrixMap<T> logits() const { return ConstMatrixMap<T>(logits_.data(), rows_, classes_); }
  bool has_targets() const { return has_targets_; }
  bool unbatched() const { return unbatched_; }
  int64_t rows() const { return rows_; }
  int64_t classes() const { return classes_; }
  const std::vector<int64_t>& logits_shape() const { return logits_.shape(); }
  // The loss's shape: [] for MEAN/SUM and for unbatched logits, [batch] for NONE.
  std::vector<int64_t> loss_shape() const;
  // `shape` with the batch dimension dropped for unbatched logits ([batch, c, c] → [c, c]).
  std::vector<int64_t> Unbatch(std::vector<int64_t> shape) const;

 private:
  std::optional<HalfType> half_;  // T = uint16_t only
  InputTensor<T> logits_;
  InputTensor<T> probabilities_;
  bool unbatched_ = false;
  int64_t rows_ = 0, classes_ = 0;
  bool has_targets_ = false;
  bool probability_targets_ = false;
  absl::Span<const int64_t> class_indices_;
  LossOptions options_;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_LOSS_REQUEST_H_
