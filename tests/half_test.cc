// The float16 / bfloat16 conversions of lib/half.h against two independent references: Eigen's
// Eigen::half / Eigen::bfloat16 (F16C hardware conversion where the build targets it) and an exact
// search of the sorted grid of half values in float64, written here from the definition of
// round-to-nearest-even. Every half bit pattern is checked, and a dense sweep of float32 values
// plus every midpoint between adjacent half values and its neighbours.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "Eigen/Core"
#include "gtest/gtest.h"
#include "lib/half.h"

namespace gradserve {
namespace {

const HalfType kTypes[] = {HalfType::kFloat16, HalfType::kBFloat16};

float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The half value of bits `h` per Eigen, widened.
float EigenWiden(HalfType t, uint16_t h) {
  if (t == HalfType::kFloat16) return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h));
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(h));
}

uint16_t EigenNarrow(HalfType t, float f) {
  if (t == HalfType::kFloat16) return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f));
  return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f));
}

// Round-to-nearest-even by definition: the non-negative finite half values in bit order (bit
// pattern = index), then the first pattern past them (Inf) standing for the next power of two,
// where IEEE overflow rounds to. Ties go to the even pattern.
class GridReference {
 public:
  explicit GridReference(HalfType t) {
    const uint16_t inf = t == HalfType::kFloat16 ? 0x7c00 : 0x7f80;
    for (uint32_t h = 0; h < inf; ++h) grid_.push_back(HalfToFloat(t, static_cast<uint16_t>(h)));
    grid_.push_back(t == HalfType::kFloat16 ? 65536.0 : 0x1p128);
  }
  uint16_t Round(double x) const {
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(x);
    if (a >= grid_.back()) return sign | static_cast<uint16_t>(grid_.size() - 1);
    const size_t lo = std::upper_bound(grid_.begin(), grid_.end(), a) - grid_.begin() - 1;
    const double down = a - grid_[lo], up = grid_[lo + 1] - a;
    const size_t pick = down < up ? lo : up < down ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
    return sign | static_cast<uint16_t>(pick);
  }
  const std::vector<double>& grid() const { return grid_; }

 private:
  std::vector<double> grid_;
};

TEST(HalfTest, EveryBitPatternWidensExactlyAndRoundTrips) {
  for (HalfType t : kTypes) {
    int nans = 0;
    for (uint32_t u = 0; u <= 0xffff; ++u) {
      const uint16_t h = static_cast<uint16_t>(u);
      const float f = HalfToFloat(t, h);
      const float e = EigenWiden(t, h);
      if (std::isnan(e)) {
        ++nans;
        ASSERT_TRUE(std::isnan(f)) << HalfTypeName(t) << " 0x" << std::hex << u;
        const uint16_t back = FloatToHalf(t, f);
        ASSERT_TRUE(HalfIsNonFinite(t, back) && std::isnan(HalfToFloat(t, back)));
        ASSERT_EQ(back & 0x8000, h & 0x8000) << "NaN keeps its sign";
        continue;
      }
      ASSERT_EQ(std::memcmp(&f, &e, 4), 0) << HalfTypeName(t) << " 0x" << std::hex << u << ": " << f << " vs " << e;
      ASSERT_EQ(FloatToHalf(t, f), h) << HalfTypeName(t) << " 0x" << std::hex << u;
      ASSERT_EQ(DoubleToHalf(t, f), h);
      ASSERT_EQ(HalfIsNonFinite(t, h), !std::isfinite(f));
    }
    EXPECT_EQ(nans, t == HalfType::kFloat16 ? 2046 : 254) << HalfTypeName(t);
  }
}

// Checks FloatToHalf(f) against both references (NaN: NaN out).
void CheckFloat(HalfType t, const GridReference& ref, float f) {
  const uint16_t got = FloatToHalf(t, f);
  if (std::isnan(f)) {
    ASSERT_TRUE(std::isnan(HalfToFloat(t, got))) << f;
    return;
  }
  ASSERT_EQ(got, EigenNarrow(t, f)) << HalfTypeName(t) << " " << std::hexfloat << f;
  ASSERT_EQ(got, ref.Round(f)) << HalfTypeName(t) << " " << std::hexfloat << f;
  ASSERT_EQ(DoubleToHalf(t, f), got);
}

TEST(HalfTest, DenseFloat32SweepRoundsToNearestEven) {
  for (HalfType t : kTypes) {
    const GridReference ref(t);
    // Every 257th float32 bit pattern (both signs, all exponents, NaN and Inf included) ...
    for (uint64_t u = 0; u <= 0xffffffffu; u += 257) CheckFloat(t, ref, BitsToFloat(static_cast<uint32_t>(u)));
    // ... and every midpoint between adjacent half values, with its float32 neighbours: the
    // ties, and the closest values on either side of them (overflow to Inf included).
    const std::vector<double>& g = ref.grid();
    for (size_t k = 0; k + 1 < g.size(); ++k) {
      const float mid = static_cast<float>((g[k] + g[k + 1]) / 2);  // exact in float32
      ASSERT_EQ(static_cast<double>(mid), (g[k] + g[k + 1]) / 2);
      for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY),
                      static_cast<float>(g[k])}) {
        CheckFloat(t, ref, f);
        CheckFloat(t, ref, -f);
      }
    }
    for (float f : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, -1e-45f, FLT_MAX, -FLT_MAX,
                    FLT_MIN, 0x1p-25f, 0x1.000002p-25f, 0x1p-24f, 0x1.8p-24f, 65504.0f, 65519.996f,
                    65520.0f}) {
      CheckFloat(t, ref, f);
    }
  }
}

TEST(HalfTest, Float64RoundsOnceNotTwice) {
  std::mt19937_64 rng(11);
  for (HalfType t : kTypes) {
    const GridReference ref(t);
    const std::vector<double>& g = ref.grid();
    std::uniform_int_distribution<size_t> pick(0, g.size() - 2);
    std::uniform_real_distribution<double> frac(0.0, 1.0);
    for (int k = 0; k < 200000; ++k) {
      const size_t i = pick(rng);
      const double mid = (g[i] + g[i + 1]) / 2;
      // Just above or below a midpoint by less than float32 can resolve: rounding to float32
      // first would land on the midpoint and then round to even, possibly the wrong way.
      const double tiny = (g[i + 1] - g[i]) * 0x1p-30;
      for (double x : {mid + tiny, mid - tiny, mid, g[i] + (g[i + 1] - g[i]) * frac(rng)}) {
        ASSERT_EQ(DoubleToHalf(t, x), ref.Round(x)) << HalfTypeName(t) << " " << std::hexfloat << x;
        ASSERT_EQ(DoubleToHalf(t, -x), ref.Round(-x));
      }
    }
    for (double x : {1e300, -1e300, 0x1p128, 3.4028235677973366e38, 1e-300, -1e-320, 0x1p-149 / 3}) {
      EXPECT_EQ(DoubleToHalf(t, x), ref.Round(x)) << HalfTypeName(t) << " " << x;
    }
    EXPECT_TRUE(std::isnan(HalfToFloat(t, DoubleToHalf(t, std::nan("")))));
  }
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(FloatToFloat16(0.1f), 0x2e66);
  EXPECT_EQ(FloatToFloat16(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToFloat16(65520.0f), 0x7c00) << "the tie past the largest value overflows";
  EXPECT_EQ(FloatToFloat16(0x1p-24f), 0x0001) << "smallest subnormal";
  EXPECT_EQ(FloatToFloat16(0x1p-25f), 0x0000) << "a tie with zero rounds to even zero";
  EXPECT_EQ(FloatToFloat16(-0x1.8p-24f), 0x8002) << "1.5 ulp rounds to even 2";
  EXPECT_EQ(FloatToBFloat16(1.0f + 0x1p-8f), 0x3f80) << "a tie rounds to even";
  EXPECT_EQ(FloatToBFloat16(1.0f + 0x1.8p-7f), 0x3f82);
  EXPECT_EQ(FloatToBFloat16(FLT_MAX), 0x7f80);
  EXPECT_EQ(HalfUnitRoundoff(HalfType::kFloat16), 0x1p-11);
  EXPECT_EQ(HalfUnitRoundoff(HalfType::kBFloat16), 0x1p-8);
  std::vector<uint16_t> bits(3);
  const float in[3] = {1.0f, -2.5f, 1e6f};
  NarrowToHalf(HalfType::kFloat16, in, bits.data(), 3);
  float back[3];
  WidenHalf(HalfType::kFloat16, bits.data(), back, 3);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.5f);
  EXPECT_TRUE(std::isinf(back[2]));
}

}  // namespace
}  // namespace gradserve
