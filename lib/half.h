// Exact conversions between float32/float64 and the two 16-bit float formats of the API:
// IEEE 754 binary16 ("float16": 1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (the upper 16
// bits of a float32: 1 sign, 8 exponent, 7 mantissa bits). Values travel as their bit patterns in
// uint16_t, so no half type leaks into the math: the library widens to float32 and computes there.
//
// Widening is exact. Narrowing rounds to nearest, ties to even, with IEEE overflow (values at or
// past the midpoint between the largest finite value and the next power of two become ±Inf),
// gradual underflow to subnormals and ±0, and NaN kept NaN (sign and leading payload kept, made
// quiet). The conversions are bit arithmetic (plus float32 additions and multiplications that are
// exact or round to nearest, the default mode), unaffected by flush-to-zero or denormals-are-zero.
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

// The conversions below are branch-free (every case computed, one selected), so that the bulk
// loops at the end of this file vectorize.

inline float Float16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t em = h & 0x7fff;  // exponent and mantissa
  // Normal: rebias the exponent (15 → 127). Inf/NaN (exponent 31): rebias twice more to reach
  // 255, keeping NaN's payload. Subnormal or zero: em · 2^-24, exact in float32 and never a
  // float32 subnormal.
  const uint32_t normal = (em << 13) + ((127 - 15) << 23) + (em >= 0x7c00 ? (127 - 15) << 23 : 0);
  const uint32_t tiny = internal::FloatBits(static_cast<float>(static_cast<int32_t>(em)) * 0x1p-24f);
  const uint32_t is_tiny = 0u - static_cast<uint32_t>(em < 0x0400);  // all ones or zero
  return internal::BitsFloat(((tiny & is_tiny) | (normal & ~is_tiny)) | sign);
}

inline float BFloat16ToFloat(uint16_t h) { return internal::BitsFloat(static_cast<uint32_t>(h) << 16); }

inline uint16_t FloatToFloat16(float f) {
  const uint32_t all = internal::FloatBits(f);
  const uint32_t sign = (all >> 16) & 0x8000;
  const uint32_t x = all & 0x7fffffffu;
  // NaN: quiet, with the payload's top bits.
  const uint32_t nan = 0x7e00 | ((x >> 13) & 0x3ff);
  // Normal in float16 (|f| >= 2^-14): drop 13 mantissa bits, rounding to nearest even; a carry
  // into the exponent is the correct rounding up to the next binade, and past 65504 to Inf.
  const uint32_t normal = (x - ((127 - 15) << 23) + 0xfff + ((x >> 13) & 1)) >> 13;
  // Subnormal in float16: adding 0.5 puts the value's units of 2^-24 in the low mantissa bits of
  // a float32 in [0.5, 1), and the addition rounds them to nearest even. Float32 subnormals come
  // out 0 either way, so flush-to-zero and denormals-are-zero modes change nothing.
  const uint32_t tiny = internal::FloatBits(internal::BitsFloat(x) + 0.5f) - internal::FloatBits(0.5f);
  const uint32_t out = x > 0x7f800000u    ? nan
                       : x >= 0x477ff000u ? 0x7c00u  // at or past 65520, the midpoint to 2^16
                       : x >= 0x38800000u ? normal
                                          : tiny;
  return static_cast<uint16_t>(out | sign);
}

inline uint16_t FloatToBFloat16(float f) {
  const uint32_t x = internal::FloatBits(f);
  // Adding 0x7fff (+1 when the kept part is odd) carries exactly when the dropped half rounds up;
  // past the largest bfloat16 the carry reaches the exponent and gives Inf, as it should.
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1)) >> 16;
  const uint32_t nan = (x >> 16) | 0x40;  // quiet NaN, sign and payload's top bits kept
  return static_cast<uint16_t>((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
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
