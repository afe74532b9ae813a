// numpy.allclose comparisons and number formatting shared by the verifier's parts.
#ifndef GRADSERVE_LIB_VERIFY_UTIL_H_
#define GRADSERVE_LIB_VERIFY_UTIL_H_

#include <cmath>
#include <cstdint>
#include <string>

namespace gradserve {

// numpy.isclose(x, ref): |x - ref| <= atol + rtol·|ref|; equal infinities are close, NaN never.
inline bool IsClose(double x, double ref, double rtol, double atol) {
  return x == ref || std::abs(x - ref) <= atol + rtol * std::abs(ref);
}

// numpy.allclose over n elements.
bool AllClose(const double* x, const double* ref, int64_t n, double rtol, double atol);

// max |x - ref| over n elements, NaN counted as +inf; 0 for n = 0. `argmax` (optional) receives
// the flat index of the largest difference.
double MaxAbsDiff(const double* x, const double* ref, int64_t n, int64_t* argmax = nullptr);

// x against ref over n elements in one pass: MaxAbsDiff (and where), AllClose, and the largest
// |x - ref| / max(|x|, |ref|) over the elements where that is a non-zero, non-NaN denominator.
struct Comparison {
  double max_abs = 0.0;
  int64_t argmax = 0;
  double max_rel = 0.0;
  bool all_close = true;
};
Comparison Compare(const double* x, const double* ref, int64_t n, double rtol, double atol);

// "(0.5, -0.5)": up to 8 values with 6 significant digits, then "... (N values)".
std::string FormatVector(const double* v, int64_t n);

}  // namespace gradserve

#endif  // GRADSERVE_LIB_VERIFY_UTIL_H_
