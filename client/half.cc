#include "client/half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gradserve::client {
namespace {

// A binary float format of 1 sign, `kExp` exponent and `kMant` stored mantissa bits.
template <int kExp, int kMant>
uint16_t Narrow(double v) {
  constexpr int kBias = (1 << (kExp - 1)) - 1;
  constexpr int kEmin = 1 - kBias, kEmax = kBias;
  constexpr uint32_t kInf = ((1u << kExp) - 1) << kMant;
  const uint16_t sign = std::signbit(v) ? uint16_t{1} << (kExp + kMant) : 0;
  if (std::isnan(v)) return sign | kInf | (1u << (kMant - 1));  // a quiet NaN
  const double a = std::fabs(v);
  if (std::isinf(a)) return sign | kInf;
  if (a == 0) return sign;
  int k;
  std::frexp(a, &k);  // a = f · 2^k, f in [0.5, 1): the leading bit is 2^(k-1)
  int e = std::max(k - 1, kEmin);  // below kEmin the format's spacing stays 2^(kEmin - kMant)
  // a / 2^(e - kMant) is exact (a power-of-two scaling far from double's limits); rounding it to
  // an integer is rounding to the format's spacing, and the default mode is ties-to-even.
  double r = std::nearbyint(std::ldexp(a, kMant - e));
  constexpr double kCarry = double(2u << kMant);
  if (r == kCarry) {  // rounded up to the next binade
    ++e;
    r = kCarry / 2;
  }
  if (e > kEmax) return sign | kInf;
  const uint32_t n = static_cast<uint32_t>(r);
  if (n < (1u << kMant)) return sign | n;  // subnormal (exponent field 0)
  return sign | (static_cast<uint32_t>(e + kBias) << kMant) | (n - (1u << kMant));
}

}  // namespace

uint16_t DoubleToHalf(double v) { return Narrow<5, 10>(v); }
uint16_t DoubleToBfloat16(double v) { return Narrow<8, 7>(v); }

double HalfToDouble(uint16_t bits) {
  const int exp = (bits >> 10) & 0x1f;
  const int mant = bits & 0x3ff;
  double a;
  if (exp == 0x1f) {
    a = mant == 0 ? HUGE_VAL : std::nan("");
  } else if (exp == 0) {
    a = std::ldexp(mant, -24);
  } else {
    a = std::ldexp(mant | 0x400, exp - 25);
  }
  return bits & 0x8000 ? -a : a;
}

double Bfloat16ToDouble(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

}  // namespace gradserve::client
