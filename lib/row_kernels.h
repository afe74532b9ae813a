// Per-row building blocks shared by the softmax and cross-entropy kernels (internal).
#ifndef GRADSERVE_LIB_ROW_KERNELS_H_
#define GRADSERVE_LIB_ROW_KERNELS_H_

#include <cmath>
#include <cstdint>

#include "Eigen/Core"

namespace gradserve::internal {

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

template <typename T>
struct ShiftedExp {
  T max;      // m = max_j z_j
  T sum;      // S = Σ_j exp(z_j - m), in [1, n] for finite rows
  bool finite;  // every z_j was finite
  T LogSumExp() const { return max + std::log(sum); }
};

// Writes exp(z - max z) to `e` (which may be null: then only the sum is formed). Rows must be
// non-empty. A NaN anywhere makes `sum` NaN and an infinity makes `max` or the minimum infinite,
// so `finite` costs no extra pass over memory.
template <typename T>
inline ShiftedExp<T> ExpShifted(const T* z, T* e, int64_t n) {
  ConstArrayMap<T> zr(z, n);
  const T m = zr.maxCoeff();
  const T lo = zr.minCoeff();
  T s;
  if (e != nullptr) {
    ArrayMap<T> er(e, n);
    er = (zr - m).exp();
    s = er.sum();
  } else {
    s = (zr - m).exp().sum();
  }
  return {m, s, std::isfinite(m) && std::isfinite(lo) && std::isfinite(s)};
}

}  // namespace gradserve::internal

#endif  // GRADSERVE_LIB_ROW_KERNELS_H_
