#include "lib/verify_util.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gradserve {

bool AllClose(const double* x, const double* ref, int64_t n, double rtol, double atol) {
  for (int64_t k = 0; k < n; ++k) {
    if (!IsClose(x[k], ref[k], rtol, atol)) return false;
  }
  return true;
}

double MaxAbsDiff(const double* x, const double* ref, int64_t n, int64_t* argmax) {
  double worst = 0.0;
  int64_t at = 0;
  for (int64_t k = 0; k < n; ++k) {
    double d = x[k] == ref[k] ? 0.0 : std::abs(x[k] - ref[k]);
    if (std::isnan(d)) d = std::numeric_limits<double>::infinity();
    if (d > worst) {
      worst = d;
      at = k;
    }
  }
  if (argmax != nullptr) *argmax = at;
  return worst;
}

Comparison Compare(const double* x, const double* ref, int64_t n, double rtol, double atol) {
  Comparison c;
  for (int64_t k = 0; k < n; ++k) {
    const double a = x[k], b = ref[k];
    double d = a == b ? 0.0 : std::abs(a - b);
    c.all_close = c.all_close && IsClose(a, b, rtol, atol);
    // Divides only when the ratio may be a new maximum (false for NaN, as for inf / inf).
    const double den = std::max(std::abs(a), std::abs(b));
    if (d > c.max_rel * den && den != 0.0) c.max_rel = std::max(c.max_rel, d / den);
    if (std::isnan(d)) d = std::numeric_limits<double>::infinity();
    if (d > c.max_abs) {
      c.max_abs = d;
      c.argmax = k;
    }
  }
  return c;
}

std::string FormatVector(const double* v, int64_t n) {
  constexpr int64_t kShown = 8;
  std::string out = "(";
  for (int64_t k = 0; k < n && k < kShown; ++k) {
    absl::StrAppend(&out, k ? ", " : "", absl::StrFormat("%.6g", v[k]));
  }
  if (n > kShown) absl::StrAppend(&out, ", ... (", n, " values)");
  return out + ")";
}

}  // namespace gradserve
