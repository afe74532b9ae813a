// Exact conversions between float32/float64 and the two 16-bit float formats of the API:
// IEEE 754 binary16 ("float16": 1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (the upper 16
// bits of a float32: 1 sign, 8 exponent, 7 mantissa bits). Values travel as their bit patterns in
// uint16_t, so no half type leaks into the math: the library widens to float32 and computes there.
//
// Widening is exact. Narrowing rounds to nearest, ties to even, with IEEE overflow (values at or
// past the midpoint between the largest finite value and the next power of two become ±Inf),
// gradual underflow to subnormals and ±0, and NaN kept NaN (sign and leading payload kept, made
// quiet). The conversions are integer bit arithmetic, so they do not depend on the floating-point
// environment (flush-to-zero or denormals-are-zero modes change nothing).
//
//   uint16_t h = FloatToHalf(HalfType::kFloat16, 0.1f);   // 0x2e66
//   float back = HalfToFloat(HalfType::kFloat16, h);      // 0.0999755859375
#ifndef GRADSERVE_LIB_HALF_H_
#define GRADSERVE_LIB_HALF_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace gradserve {

enum class HalfType { kFloat16, kBFloat16 };

inline const char* HalfTypeName(HalfType t) {
  return t == HalfType::kFloat16 ? "float16" : "bfloat16";
}

// The unit roundoff u: half the distance from 1 to the next value (2^-11 and 2^-8).
inline double HalfUnitRoundoff(HalfType t) {
  return t == HalfType::kFloat16 ? 0x1p-11 : 0x1p-8;
}

// The largest finite value (65504 and about 3.39e38).
inline double HalfMax(HalfType t) {
  return t == HalfType::kFloat16 ? 65504.0 : 0x1.fep127;
}

// True when the bits are ±Inf or NaN.
inline bool HalfIsNonFinite(HalfType t, uint16_t h) {
  const uint16_t exponent = t == HalfType::kFloat16 ? 0x7c00 : 0x7f80;
  return (h & exponent) == exponent;
}

namespace internal {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace internal

inline float Float16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t em = h & 0x7fff;  // exponent and mantissa
  uint32_t bits;
  if (em >= 0x7c00) {
    bits = 0x7f800000u | ((em & 0x3ff) << 13);  // Inf, or NaN with its payload
  } else if (em >= 0x0400) {
    bits = (em << 13) + ((127 - 15) << 23);  // normal: rebias the exponent
  } else {
    // Subnormal (or zero): em · 2^-24, exact in float32 and never a float32 subnormal.
    bits = internal::FloatBits(static_cast<float>(em) * 0x1p-24f);
  }
  return internal::BitsFloat(bits | sign);
}

inline float BFloat16ToFloat(uint16_t h) { return internal::BitsFloat(static_cast<uint32_t>(h) << 16); }

inline uint16_t FloatToFloat16(float f) {
  uint32_t x = internal::FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  uint16_t out;
  if (x > 0x7f800000u) {
    out = static_cast<uint16_t>(0x7e00 | ((x >> 13) & 0x3ff));  // NaN: quiet, payload's top bits
  } else if (x >= 0x477ff000u) {
    out = 0x7c00;  // at or past 65520, the midpoint between 65504 and 2^16 (Inf included)
  } else if (x >= 0x38800000u) {
    // Normal in float16 (|f| >= 2^-14): drop 13 mantissa bits, rounding to nearest even; a carry
    // into the exponent is the correct rounding up to the next binade.
    const uint32_t odd = (x >> 13) & 1;
    out = static_cast<uint16_t>((x - ((127 - 15) << 23) + 0xfff + odd) >> 13);
  } else {
    // Subnormal in float16: the value in units of 2^-24 is m · 2^-shift, rounded to nearest even.
    const uint32_t exponent = x >> 23;
    const uint32_t shift = 126 - exponent;  // >= 14 here; a float32 subnormal (exponent 0) is tiny
    if (exponent == 0 || shift > 24) {
      out = 0;  // below 2^-25: rounds to zero (2^-25 itself is a tie, to even zero, at shift 24)
    } else {
      const uint32_t m = (x & 0x7fffff) | 0x800000;
      const uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
      out = static_cast<uint16_t>(q + (rest > half || (rest == half && (q & 1))));
    }
  }
  return out | sign;
}

inline uint16_t FloatToBFloat16(float f) {
  const uint32_t x = internal::FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  // Adding 0x7fff (+1 when the kept part is odd) carries exactly when the dropped half rounds up;
  // past the largest bfloat16 the carry reaches the exponent and gives Inf, as it should.
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

inline float HalfToFloat(HalfType t, uint16_t h) {
  return t == HalfType::kFloat16 ? Float16ToFloat(h) : BFloat16ToFloat(h);
}

inline uint16_t FloatToHalf(HalfType t, float f) {
  return t == HalfType::kFloat16 ? FloatToFloat16(f) : FloatToBFloat16(f);
}

// float64 → half in one rounding. Rounding to float32 first could round twice (a float64 just
// above a half midpoint can become the midpoint in float32), so the float32 step rounds to odd:
// truncate, and set the last bit when anything was dropped. float32 keeps at least 2 more bits
// than either half format everywhere, which makes the second rounding the correct one.
inline uint16_t DoubleToHalf(HalfType t, double d) {
  float f = static_cast<float>(d);
  if (std::isfinite(d) && static_cast<double>(f) != d) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
    f = internal::BitsFloat(internal::FloatBits(f) | 1u);
  }
  return FloatToHalf(t, f);
}

// Bulk conversions for blocks of a tensor.
inline void WidenHalf(HalfType t, const uint16_t* in, float* out, int64_t n) {
  if (t == HalfType::kFloat16) {
    for (int64_t k = 0; k < n; ++k) out[k] = Float16ToFloat(in[k]);
  } else {
    for (int64_t k = 0; k < n; ++k) out[k] = BFloat16ToFloat(in[k]);
  }
}

inline void NarrowToHalf(HalfType t, const float* in, uint16_t* out, int64_t n) {
  if (t == HalfType::kFloat16) {
    for (int64_t k = 0; k < n; ++k) out[k] = FloatToFloat16(in[k]);
  } else {
    for (int64_t k = 0; k < n; ++k) out[k] = FloatToBFloat16(in[k]);
  }
}

}  // namespace gradserve

#endif  // GRADSERVE_LIB_HALF_H_
