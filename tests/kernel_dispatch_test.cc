#include "lib/kernels/kernel_dispatch.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace {

// Restores dispatch's own choice after a test that forces kernels.
class KernelDispatchTest : public testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(ForceKernel("").ok()); }
};

#if defined(__x86_64__) || defined(__i386__)
// What the CPU itself reports (GCC's cpuid), independent of Highway's detection.
bool CpuRuns(const std::string& kernel) {
  __builtin_cpu_init();
  if (kernel == "AVX3" || kernel == "AVX3_DL") {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  if (kernel == "AVX2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (kernel == "SSE4") return __builtin_cpu_supports("sse4.2");
  if (kernel == "SSSE3") return __builtin_cpu_supports("ssse3");
  return kernel == "SCALAR" || kernel == "EMU128";
}

TEST_F(KernelDispatchTest, NeverPicksAKernelTheCpuLacks) {
  const std::vector<std::string> kernels = SupportedKernels();
  ASSERT_FALSE(kernels.empty());
  for (const std::string& k : kernels) EXPECT_TRUE(CpuRuns(k)) << k << " listed as supported";
  EXPECT_TRUE(CpuRuns(ChosenKernel())) << ChosenKernel();
}

TEST_F(KernelDispatchTest, PicksAvx512WhereTheCpuHasIt) {
  // Every build compiles the AVX-512 kernel (the portable one among others), so a CPU with it
  // must run it; likewise AVX2 on a CPU with AVX2 but not AVX-512.
  if (CpuRuns("AVX3")) {
    // AVX3_DL: the same kernel built for newer AVX-512 CPUs, in -march=native builds on them.
    EXPECT_TRUE(ChosenKernel() == "AVX3" || ChosenKernel() == "AVX3_DL") << ChosenKernel();
  } else if (CpuRuns("AVX2")) {
    EXPECT_EQ(ChosenKernel(), "AVX2");
  } else {
    GTEST_SKIP() << "this CPU has neither AVX-512 nor AVX2; dispatch runs " << ChosenKernel();
  }
}
#endif

TEST_F(KernelDispatchTest, PicksTheBestSupportedKernel) {
  EXPECT_EQ(ChosenKernel(), SupportedKernels().front());
}

TEST_F(KernelDispatchTest, ForcingRunsThatKernelAndEmptyRestoresTheBest) {
  const std::string best = ChosenKernel();
  for (const std::string& k : SupportedKernels()) {
    ASSERT_TRUE(ForceKernel(k).ok()) << k;
    EXPECT_EQ(ChosenKernel(), k);
  }
  ASSERT_TRUE(ForceKernel("").ok());
  EXPECT_EQ(ChosenKernel(), best);
}

TEST_F(KernelDispatchTest, AnUnknownKernelIsRefusedNamingTheAvailableOnes) {
  const std::string before = ChosenKernel();
  const absl::Status s = ForceKernel("AVX9000");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("AVX9000"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(SupportedKernels().front()), absl::string_view::npos) << s;
  EXPECT_EQ(ChosenKernel(), before);
}

// Rows of every length up to a few vectors (tails of each size), with ranges narrow and wide
// (exponentials that underflow into subnormals and to 0, and differences that overflow).
template <typename T>
std::vector<std::vector<T>> TestRows() {
  std::mt19937_64 rng(7);
  std::vector<std::vector<T>> rows;
  for (int n = 1; n <= 40; ++n) {
    for (double spread : {1.0, 30.0, 400.0}) {
      std::normal_distribution<double> normal(0.0, spread);
      std::vector<T> row(n);
      for (T& v : row) v = static_cast<T>(normal(rng));
      rows.push_back(row);
    }
  }
  const T big = std::numeric_limits<T>::max();
  rows.push_back({T(0), T(-100), T(-104), T(-1e4), T(-0.5)});
  rows.push_back({T(0), T(-740), T(-745), T(-1000), T(-1e30), T(-30)});
  rows.push_back({big, -big, T(0), T(1), big, T(-1)});
  return rows;
}

// Every kernel gives every exponential within a few ulp of std::exp of z - max (times 1 + |z - max|,
// the rounding of the argument; absolutely within the smallest normal for results that underflow), the row maximum exactly 1, and a sum of at least
// 1; kernels with FMA agree to 2 ulp (AVX-512's vreduceps rounds t - floor(t) differently from a
// subtraction, by up to an ulp of the fraction).
template <typename T>
void CheckKernelsAgree(double rel_tol) {
  const std::vector<std::string> kernels = SupportedKernels();
  std::vector<std::vector<T>> first;  // results of the first kernel with FMA
  std::string first_name;
  for (const std::string& k : kernels) {
    ASSERT_TRUE(ForceKernel(k).ok()) << k;
    const bool fma = k.rfind("AVX", 0) == 0;
    size_t r = 0;
    for (const std::vector<T>& row : TestRows<T>()) {
      const int64_t n = static_cast<int64_t>(row.size());
      std::vector<T> e(n);
      const internal::ShiftedExp<T> s = internal::ExpShifted<T>(row.data(), e.data(), n);
      ASSERT_TRUE(s.finite) << k << " row " << r;
      T sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double x = static_cast<double>(row[j]) - static_cast<double>(s.max);
        const double want = std::exp(x);
        // Rounding z - max and its scaling in T costs a relative error of about ulp·|x|.
        const double tol = want == 0 ? std::numeric_limits<T>::min()
                                     : std::max(rel_tol * (1 + std::abs(x)) * want,
                                                double(std::numeric_limits<T>::min()));
        ASSERT_NEAR(e[j], want, tol) << k << " row " << r << " element " << j << " of " << n;
        if (row[j] == s.max) {
          ASSERT_EQ(e[j], T(1)) << k << " row " << r;
        }
        sum += e[j];
      }
      EXPECT_GE(s.sum, T(1)) << k << " row " << r;
      EXPECT_NEAR(s.sum, sum, 4 * rel_tol * sum) << k << " row " << r;
      const internal::ShiftedExp<T> no_store = internal::ExpShifted<T>(row.data(), nullptr, n);
      EXPECT_EQ(no_store.sum, s.sum) << k << " row " << r;
      if (fma) {
        if (first_name.empty()) {
          first.push_back(e);
        } else {
          for (int64_t j = 0; j < n; ++j) {
            const T a = first[r][j];
            const T ulp = std::nextafter(a, std::numeric_limits<T>::infinity()) - a;
            EXPECT_LE(std::abs(e[j] - a), 2 * ulp)
                << k << " and " << first_name << " differ in row " << r << " at " << j
                << ": z - max = " << row[j] - s.max << ", " << e[j] << " vs " << a;
          }
        }
      }
      ++r;
    }
    if (fma && first_name.empty()) first_name = k;
  }
}

TEST_F(KernelDispatchTest, EveryKernelComputesTheFloatExponentials) {
  CheckKernelsAgree<float>(4e-7);
}

TEST_F(KernelDispatchTest, EveryKernelComputesTheDoubleExponentials) {
  CheckKernelsAgree<double>(4e-16);
}

template <typename T>
void CheckNonFiniteRows() {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  for (const std::string& k : SupportedKernels()) {
    ASSERT_TRUE(ForceKernel(k).ok()) << k;
    for (int64_t n : {1, 3, 8, 16, 17, 33}) {
      for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
        for (T bad : {nan, inf, -inf}) {
          std::vector<T> row(n, T(0.5));
          row[at] = bad;
          std::vector<T> e(n);
          EXPECT_FALSE(internal::ExpShifted<T>(row.data(), e.data(), n).finite)
              << k << ": " << bad << " at " << at << " of " << n;
          EXPECT_FALSE(internal::ExpShifted<T>(row.data(), nullptr, n).finite)
              << k << ": " << bad << " at " << at << " of " << n;
          std::vector<T> out(n);
          bool finite = true;
          internal::ExpRows(row.data(), out.data(), 1, n, false,
                            [&](int64_t, const internal::ShiftedExp<T>& s, T*) {
                              finite = s.finite;
                              return T(1);
                            });
          EXPECT_FALSE(finite) << k << ": " << bad << " at " << at << " of " << n;
        }
      }
    }
  }
}

TEST_F(KernelDispatchTest, EveryKernelFlagsNanAndInfinityInFloatRows) { CheckNonFiniteRows<float>(); }

TEST_F(KernelDispatchTest, EveryKernelFlagsNanAndInfinityInDoubleRows) {
  CheckNonFiniteRows<double>();
}

}  // namespace
}  // namespace gradserve
