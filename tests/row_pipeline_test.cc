// ExpRows (lib/row_kernels.h) on each of its write paths: a scratch row on the stack, or in place
// for long rows, with ordinary and non-temporal stores, from aligned and unaligned addresses. Each row must come out exactly as ExpShifted forms it alone, adjusted and scaled by
// its own callback, and nothing outside the output may be written. kernel_test_main.cc runs every
// test once per kernel the CPU supports.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "lib/kernels/kernel_dispatch.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace {

struct Case {
  int64_t rows;
  int64_t n;
  bool stream;
  int64_t offset;  // elements between a 64-byte boundary and the output
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << c.rows << "×" << c.n << (c.stream ? " streamed" : "") << " at +" << c.offset;
}

// Every path: scratch rows (up to 4096 floats), rows in place, up to rows of 1 MiB.
template <typename T>
std::vector<Case> Cases() {
  const int64_t stack = internal::kScratchRowBytes / sizeof(T);
  const int64_t in_place = (1 << 20) / sizeof(T) + 37;
  return {{1, 1, false, 0},      {3, 17, true, 1},        {7, 1000, false, 0},
          {7, 1000, true, 0},    {7, 1001, true, 3},      {5, stack, true, 5},
          {4, stack + 1, true, 2}, {3, 5000, false, 0},   {3, 5003, true, 7},
          {2, in_place, false, 1}, {2, in_place, true, 0}};
}

template <typename T>
void CheckRowsMatchOneRowAtATime() {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 3.0);
  const T sentinel = T(-12345);
  for (const Case& c : Cases<T>()) {
    SCOPED_TRACE(testing::Message() << ChosenKernel() << ", " << c);
    std::vector<T> z(c.rows * c.n);
    for (T& v : z) v = static_cast<T>(normal(rng));
    // The output with a guard of 64 elements either side, starting `offset` past a boundary.
    constexpr int64_t kGuard = 64;
    std::vector<T> buffer(c.rows * c.n + 2 * kGuard + 64, sentinel);
    T* out = buffer.data() + kGuard;
    while (reinterpret_cast<uintptr_t>(out) % 64 != 0) ++out;
    out += c.offset;
    const int64_t begin = out - buffer.data(), end = begin + c.rows * c.n;

    std::vector<internal::ShiftedExp<T>> seen;
    internal::ExpRows(z.data(), out, c.rows, c.n, c.stream,
                      [&](int64_t i, const internal::ShiftedExp<T>& s, T* e) {
                        seen.push_back(s);
                        e[i % c.n] -= s.sum;  // as the fused gradient adjusts its target class
                        return T(i + 1) / s.sum;
                      });
    ASSERT_EQ(static_cast<int64_t>(seen.size()), c.rows);
    std::vector<T> e(c.n);
    for (int64_t i = 0; i < c.rows; ++i) {
      const internal::ShiftedExp<T> want = internal::ExpShifted<T>(&z[i * c.n], e.data(), c.n);
      ASSERT_EQ(seen[i].max, want.max) << "row " << i;
      ASSERT_EQ(seen[i].sum, want.sum) << "row " << i;
      ASSERT_TRUE(seen[i].finite) << "row " << i;
      e[i % c.n] -= want.sum;
      const T k = T(i + 1) / want.sum;
      for (int64_t j = 0; j < c.n; ++j) {
        ASSERT_EQ(out[i * c.n + j], k * e[j]) << "row " << i << " element " << j;
      }
    }
    for (int64_t j = 0; j < static_cast<int64_t>(buffer.size()); ++j) {
      if (j < begin || j >= end) {
        ASSERT_EQ(buffer[j], sentinel) << "written outside, at " << j - begin;
      }
    }
  }
}

TEST(RowPipelineTest, FloatRowsMatchOneRowAtATimeOnEveryPath) {
  CheckRowsMatchOneRowAtATime<float>();
}

TEST(RowPipelineTest, DoubleRowsMatchOneRowAtATimeOnEveryPath) {
  CheckRowsMatchOneRowAtATime<double>();
}

// A NaN or an infinity marks its own row as not finite, on every path, whether it is found by the
// pipelined max pass (rows after the first) or the first row's own.
template <typename T>
void CheckNonFiniteRowsAreFlagged() {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  for (const Case& c : Cases<T>()) {
    for (const int64_t bad_row : {int64_t{0}, c.rows - 1}) {
      for (const T bad : {nan, inf, -inf}) {
        SCOPED_TRACE(testing::Message() << ChosenKernel() << ", " << c << ", " << bad << " in row "
                                        << bad_row);
        std::vector<T> z(c.rows * c.n, T(0.25));
        z[bad_row * c.n + c.n / 2] = bad;
        std::vector<T> out(z.size());
        std::vector<bool> finite;
        internal::ExpRows(z.data(), out.data(), c.rows, c.n, c.stream,
                          [&](int64_t, const internal::ShiftedExp<T>& s, T*) {
                            finite.push_back(s.finite);
                            return T(1);
                          });
        ASSERT_EQ(static_cast<int64_t>(finite.size()), c.rows);
        for (int64_t i = 0; i < c.rows; ++i) EXPECT_EQ(finite[i], i != bad_row) << "row " << i;
      }
    }
  }
}

TEST(RowPipelineTest, FloatNonFiniteRowsAreFlaggedOnEveryPath) {
  CheckNonFiniteRowsAreFlagged<float>();
}

TEST(RowPipelineTest, DoubleNonFiniteRowsAreFlaggedOnEveryPath) {
  CheckNonFiniteRowsAreFlagged<double>();
}

}  // namespace
}  // namespace gradserve
