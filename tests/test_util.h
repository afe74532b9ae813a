// Helpers shared by the unit tests: status assertions and seeded random inputs.
#ifndef GRADSERVE_TESTS_TEST_UTIL_H_
#define GRADSERVE_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "lib/tensor.h"

// EXPECT_OK(status or StatusOr) << "more context": evaluates `expr` once (a call with side effects
// must not run twice on failure) and prints its status; the switch keeps an else outside the
// macro from binding to the macro's if, as gtest's own macros do.
#define EXPECT_OK(expr)                                                                  \
  switch (0)                                                                             \
  case 0:                                                                                \
  default:                                                                               \
    if (const ::absl::Status gradserve_s_ = ::gradserve::testing::ToStatus(expr);        \
        gradserve_s_.ok()) {                                                             \
    } else                                                                               \
      ADD_FAILURE() << #expr << " is " << gradserve_s_
#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const ::absl::Status gradserve_s_ = ::gradserve::testing::ToStatus(expr); \
    ASSERT_TRUE(gradserve_s_.ok()) << gradserve_s_;          \
  } while (0)

namespace gradserve::testing {

inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) { return s.status(); }

// Uniform logits in [-scale, scale].
template <typename T>
RowMatrix<T> RandomLogits(std::mt19937_64& rng, int64_t rows, int64_t cols, double scale) {
  std::uniform_real_distribution<double> u(-scale, scale);
  RowMatrix<T> z(rows, cols);
  for (int64_t k = 0; k < z.size(); ++k) z.data()[k] = static_cast<T>(u(rng));
  return z;
}

// Random probability rows (soft labels).
template <typename T>
RowMatrix<T> RandomProbabilities(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  RowMatrix<double> p(rows, cols);
  for (int64_t k = 0; k < p.size(); ++k) p.data()[k] = u(rng);
  for (int64_t i = 0; i < rows; ++i) p.row(i) /= p.row(i).sum();
  return p.cast<T>();
}

inline std::vector<int64_t> RandomLabels(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::uniform_int_distribution<int64_t> u(0, cols - 1);
  std::vector<int64_t> y(rows);
  for (auto& v : y) v = u(rng);
  return y;
}

// The contract's float32 bound (docs/api.md): max(1e-5, 0.1·classes·2⁻²⁴)·max(1, max |float64 result|).
inline double Float32Bound(int64_t classes, double max_abs_reference) {
  return std::max(1e-5, 0.1 * static_cast<double>(classes) / 16777216.0) *
         std::max(1.0, max_abs_reference);
}

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_TEST_UTIL_H_
