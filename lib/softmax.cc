#include "lib/softmax.h"

#include <atomic>
#include <cmath>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace {

using internal::ArrayMap;
using internal::ConstArrayMap;

absl::Status CheckSameShape(const char* what, int64_t rows, int64_t cols, int64_t want_rows,
                            int64_t want_cols) {
  if (rows == want_rows && cols == want_cols) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat("%s has shape [%d, %d], expected [%d, %d]",
                                                    what, rows, cols, want_rows, want_cols));
}

}  // namespace

template <typename T>
absl::Status ValidateFiniteLogits(ConstMatrixMap<T> logits) {
  for (int64_t i = 0; i < logits.rows(); ++i) {
    if (logits.row(i).allFinite()) continue;
    for (int64_t j = 0; j < logits.cols(); ++j) {
      const T v = logits(i, j);
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "logits must be finite; logits[%d, %d] is %g", i, j, static_cast<double>(v)));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Softmax(ConstMatrixMap<T> logits, MatrixMap<T> probabilities,
                     MatrixMap<T> log_probabilities, const ExecContext& ctx) {
  const int64_t n = logits.rows(), c = logits.cols();
  if (c == 0 && n > 0) return absl::InvalidArgumentError("logits have 0 classes; softmax needs at least 1");
  const bool want_p = probabilities.data() != nullptr;
  const bool want_lp = log_probabilities.data() != nullptr;
  if (want_p) GRADSERVE_RETURN_IF_ERROR(CheckSameShape("probabilities", probabilities.rows(), probabilities.cols(), n, c));
  if (want_lp) GRADSERVE_RETURN_IF_ERROR(CheckSameShape("log_probabilities", log_probabilities.rows(), log_probabilities.cols(), n, c));

  std::atomic<bool> non_finite{false};
  const bool stream = internal::StreamsOutput<T>(probabilities.size());
  // log_softmax = (z - m) - log S: the large m cancels exactly first.
  auto write_log_probs = [&](int64_t i, const internal::ShiftedExp<T>& row) {
    if (!row.finite) non_finite.store(true, std::memory_order_relaxed);
    if (!want_lp) return;
    ArrayMap<T>(log_probabilities.row(i).data(), c) =
        (ConstArrayMap<T>(logits.row(i).data(), c) - row.max) - std::log(row.sum);
  };
  GRADSERVE_RETURN_IF_ERROR(ParallelForRows(n, c, ctx, [&](int64_t begin, int64_t end) {
    if (want_p) {
      internal::ExpRows(logits.row(begin).data(), probabilities.row(begin).data(), end - begin, c,
                        stream, [&](int64_t k, const internal::ShiftedExp<T>& row, T*) {
                          write_log_probs(begin + k, row);
                          return T(1) / row.sum;
                        });
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      write_log_probs(i, internal::ExpShifted<T>(logits.row(i).data(), nullptr, c));
    }
  }));
  if (non_finite.load()) return ValidateFiniteLogits(logits);
  return absl::OkStatus();
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
  template absl::Status ValidateFiniteLogits<T>(ConstMatrixMap<T>);                            \
  template absl::Status Softmax<T>(ConstMatrixMap<T>, MatrixMap<T>, MatrixMap<T>,              \
                                   const ExecContext&);                                        \
  template absl::Status SoftmaxJacobian<T>(ConstMatrixMap<T>, T*, const ExecContext&);         \
  template absl::Status SoftmaxVjp<T>(ConstMatrixMap<T>, ConstMatrixMap<T>, MatrixMap<T>,      \
                                      const ExecContext&);
GRADSERVE_INSTANTIATE(float)
GRADSERVE_INSTANTIATE(double)
#undef GRADSERVE_INSTANTIATE

}  // namespace gradserve
