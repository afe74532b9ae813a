// CrossEntropy and ValidateLossProblem are LossPass (lib/loss_pass.h) and its validator asked for
// the loss and gradients only; TargetDistribution lives beside the rows that use it there.
#include "lib/cross_entropy.h"

#include "base/status_macros.h"
#include "lib/loss_check.h"
#include "lib/loss_pass.h"

namespace gradserve {
namespace {

template <typename T>
LossPassInputs<T> PassInputs(const LossProblem<T>& p, absl::Span<const T> grad_loss, Method method) {
  // Built whole: assigning to an Eigen::Map member would copy data, not rebind the view.
  return LossPassInputs<T>{p.logits, p.targets, p.options, grad_loss, NoConstMatrix<T>(), method};
}

}  // namespace

template <typename T>
double MeanDenominator(const LossProblem<T>& p) {
  const int64_t n = p.logits.rows();
  if (p.targets.is_probabilities) return static_cast<double>(n);
  double d = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (IsIgnoredRow(p, i)) continue;
    const int64_t y = p.targets.class_indices[i];
    d += p.options.class_weights.empty() ? 1.0 : p.options.class_weights[y];
  }
  return d;
}

template <typename T>
absl::Status ValidateLossProblem(const LossProblem<T>& problem, bool unbatched) {
  LossPassInputs<T> in = PassInputs<T>(problem, {}, Method::kFused);
  in.unbatched = unbatched;
  GRADSERVE_RETURN_IF_ERROR(ValidateLossPass(in, {}));
  return ValidateFiniteLogits<T>(problem.logits);
}

template <typename T>
absl::StatusOr<LossSummary> CrossEntropy(const LossProblem<T>& p, absl::Span<const T> grad_loss,
                                         Method method, const LossOutputs<T>& out,
                                         const ExecContext& ctx) {
  const LossPassOutputs<T> pass_out{
      NoMatrix<T>(), NoMatrix<T>(), out.loss, out.grad_logits,
      method == Method::kChainRule ? out.grad_probabilities : NoMatrix<T>()};
  return LossPass<T>(PassInputs(p, grad_loss, method), pass_out, ctx);
}

#define GRADSERVE_INSTANTIATE(T)                                                              \
  template absl::Status ValidateLossProblem<T>(const LossProblem<T>&, bool);                       \
  template double MeanDenominator<T>(const LossProblem<T>&);                                   \
  template absl::StatusOr<LossSummary> CrossEntropy<T>(                                        \
      const LossProblem<T>&, absl::Span<const T>, Method, const LossOutputs<T>&,               \
      const ExecContext&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
