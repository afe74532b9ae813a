#include "lib/softmax.h"

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/loss_pass.h"

namespace gradserve {
namespace {

absl::Status CheckSameShape(const char* what, int64_t rows, int64_t cols, int64_t want_rows,
                            int64_t want_cols) {
  if (rows == want_rows && cols == want_cols) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s has shape [%d, %d], expected [%d, %d]",
                                                    what, rows, cols, want_rows, want_cols));
}

}  // namespace

template <typename T>
absl::Status Softmax(ConstMatrixMap<T> logits, MatrixMap<T> probabilities,
                     MatrixMap<T> log_probabilities, const ExecContext& ctx) {
  const LossPassInputs<T> in{logits};
  return LossPass<T>(in, {probabilities, log_probabilities}, ctx).status();
}

template <typename T>
absl::Status SoftmaxJacobian(ConstMatrixMap<T> probabilities, T* jacobian, const ExecContext& ctx) {
  const int64_t c = probabilities.cols();
  return ParallelForRows(probabilities.rows(), c * c, ctx, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      MatrixMap<T> j(jacobian + i * c * c, c, c);
      const auto a = probabilities.row(i);
      j.noalias() = -a.transpose() * a;
      j.diagonal() += a.transpose();
    }
  });
}

template <typename T>
absl::Status SoftmaxVjp(ConstMatrixMap<T> probabilities, ConstMatrixMap<T> grad_probabilities,
                        MatrixMap<T> grad_logits, const ExecContext& ctx) {
  const int64_t n = probabilities.rows(), c = probabilities.cols();
  GRADSERVE_RETURN_IF_ERROR(CheckSameShape("grad_probabilities", grad_probabilities.rows(), grad_probabilities.cols(), n, c));
  GRADSERVE_RETURN_IF_ERROR(CheckSameShape("grad_logits", grad_logits.rows(), grad_logits.cols(), n, c));
  return ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto a = probabilities.row(i).array();
      const auto g = grad_probabilities.row(i).array();
      const T dot = (a * g).sum();
      grad_logits.row(i).array() = a * (g - dot);
    }
  });
}

#define GRADSERVE_INSTANTIATE(T)                                                              \
  template absl::Status Softmax<T>(ConstMatrixMap<T>, MatrixMap<T>, MatrixMap<T>,              \
                                   const ExecContext&);                                        \
  template absl::Status SoftmaxJacobian<T>(ConstMatrixMap<T>, T*, const ExecContext&);         \
  template absl::Status SoftmaxVjp<T>(ConstMatrixMap<T>, ConstMatrixMap<T>, MatrixMap<T>,      \
                                      const ExecContext&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
