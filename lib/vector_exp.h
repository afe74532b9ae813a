// The shifted exponentials of softmax, exp(z - max), on Highway vectors (internal, per target).
//
// At 1,000 classes the exponentials, not memory, separate a plain kernel from the memory floor.
// Every target runs the same algorithm, so every kernel has the same accuracy:
//  - float: 2^t with t = (z - max)·log2(e), as 2^floor(t) · p(t - floor(t)), p a degree-5
//    minimax fit of 2^f on [0, 1) with p(0) = 1 exactly (relative error 8e-8, about 2 ulp);
//  - double: exp(x) = 2^k · 2^(j/16) · (1 + q(r)), |r| <= ln2/32, q a degree-7 Taylor polynomial,
//    about 1 ulp like std::exp.
// AVX-512 forms t - floor(t) and applies 2^floor(t) with one instruction each (vreduce, vscalef);
// other targets use floor, subtract and exponent-bit arithmetic, which give the same values.
//
// Included once per target from lib/kernels/row_kernels.cc (hwy/foreach_target.h), hence the
// per-target include guard.
#if defined(GRADSERVE_LIB_VECTOR_EXP_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADSERVE_LIB_VECTOR_EXP_H_
#undef GRADSERVE_LIB_VECTOR_EXP_H_
#else
#define GRADSERVE_LIB_VECTOR_EXP_H_
#endif

#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gradserve::internal::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#undef GRADSERVE_EXP_AVX512
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define GRADSERVE_EXP_AVX512 1
#else
#define GRADSERVE_EXP_AVX512 0
#endif

// max(lo, x), keeping a NaN x. x86's max returns its second operand when either is NaN; other
// targets (Highway's scalar one returns the number) compare instead.
template <class V>
HWY_INLINE V ClampBelow(V lo, V x) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR
  return hn::Max(lo, x);
#else
  return hn::IfThenElse(hn::Lt(x, lo), lo, x);
#endif
}

// exp(z - max) for the float elements of one row. Subtracting first keeps the row's maximum at
// exactly 2^0 = 1 (p(0) = 1), so S >= 1, log-probabilities <= 0 and losses >= 0 as in PyTorch.
// (A single FMA z·log2(e) - max·log2(e) would scale every exponential by the rounding of its
// constant, a bias that a SUM over rows adds up.)
//
// kWide: some t of the row may be below -126 (or the row is not finite). Without AVX-512 such a
// row takes a slower path that clamps t and applies 2^floor(t) in two exact halves, so results
// underflow gradually to 0 below 2^-149 as with vscalefps; a NaN stays NaN on every path.
template <bool kWide>
struct ExpF32 {
  using D = hn::ScalableTag<float>;
  using V = hn::Vec<D>;
  static constexpr float kLog2e = 1.44269504088896341f;

  // Whether a row with this range needs the wide path (true for non-finite ranges too).
  static bool NeedsWide(float max, float min) { return !((min - max) * kLog2e >= -126.0f); }

  explicit ExpF32(float max) : max_(hn::Set(D(), max)) {}

  V operator()(V z) const {
    const D d;
    return Exp2(hn::Mul(hn::Sub(z, max_), hn::Set(d, kLog2e)));
  }

  static V Poly(V f) {
    const D d;
    V p = hn::Set(d, 0.00186711829f);
    p = hn::MulAdd(p, f, hn::Set(d, 0.00901705492f));
    p = hn::MulAdd(p, f, hn::Set(d, 0.055799894f));
    p = hn::MulAdd(p, f, hn::Set(d, 0.240164459f));
    p = hn::MulAdd(p, f, hn::Set(d, 0.693151295f));
    return hn::MulAdd(p, f, hn::Set(d, 1.0f));
  }

  // 2^k for integral k in [-126, 127], from the exponent bits.
  static V Pow2(V k) {
    const D d;
    const hn::RebindToUnsigned<D> du;
    // 2^23 + 127 + k holds 127 + k in its low mantissa bits.
    const V biased = hn::Add(k, hn::Set(d, 8388735.0f));
    return hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(du, biased)));
  }

  // 2^t for t <= 0 (any t for AVX-512).
  static V Exp2(V t) {
#if GRADSERVE_EXP_AVX512
    const V f{_mm512_reduce_ps(t.raw, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
    return V{_mm512_scalef_ps(Poly(f).raw, t.raw)};
#else
    const D d;
    if constexpr (kWide) {
      t = ClampBelow(hn::Set(d, -200.0f), t);  // below -200 every result is 0
    }
    const V fl = hn::Floor(t);
    const V p = Poly(hn::Sub(t, fl));
    if constexpr (!kWide) {
      return hn::Mul(p, Pow2(fl));
    } else {
      const V half = hn::Floor(hn::Mul(fl, hn::Set(d, 0.5f)));
      return hn::Mul(hn::Mul(p, Pow2(half)), Pow2(hn::Sub(fl, half)));
    }
#endif
  }

  V max_;
};

// exp(z - max) for the double elements of one row: exp(x) for x <= 0 to about 1 ulp, like
// std::exp: x = (n + j/16)·ln2 + r with |r| <= ln2/32, exp(x) = 2^floor(n) · T[j] · (1 + q(r)),
// T[j] = 2^(j/16) from a 16-entry table, q a degree-7 Taylor polynomial (truncation 1e-18). Half
// the instructions of Eigen's Padé form and no division. kWide as for ExpF32, at x < -708.
template <bool kWide>
struct ExpF64 {
  using D = hn::ScalableTag<double>;
  using V = hn::Vec<D>;

  static bool NeedsWide(double max, double min) { return !(min - max >= -708.0); }

  explicit ExpF64(double max) : max_(hn::Set(D(), max)) {}

  V operator()(V z) const { return ExpNonPositive(hn::Sub(z, max_)); }

  // 2^k for integral k in [-1022, 1023], from the exponent bits.
  static V Pow2(V k) {
    const D d;
    const hn::RebindToUnsigned<D> du;
    const V biased = hn::Add(k, hn::Set(d, 4503599627370496.0 + 1023.0));  // 2^52 + 1023 + k
    return hn::BitCast(d, hn::ShiftLeft<52>(hn::BitCast(du, biased)));
  }

  static V ExpNonPositive(V x) {
    const D d;
    if constexpr (kWide || GRADSERVE_EXP_AVX512) {
      x = ClampBelow(hn::Set(d, -1000.0), x);  // below -1000 the result is 0; r stays small
    }
    // s = 1.5·2^52 + round(16·x/ln2): its low mantissa bits are that integer.
    const V magic = hn::Set(d, 6755399441055744.0);
    const V s = hn::MulAdd(x, hn::Set(d, 23.083120654223414), magic);
    const V n16 = hn::Sub(s, magic);
    V r = hn::NegMulAdd(n16, hn::Set(d, 0.04332169867120683), x);  // ln2/16, high part
    r = hn::NegMulAdd(n16, hn::Set(d, 1.1378974990650914e-10), r);  // and low part
    const V t = Table(s);
    V q = hn::Set(d, 1.0 / 5040);
    q = hn::MulAdd(q, r, hn::Set(d, 1.0 / 720));
    q = hn::MulAdd(q, r, hn::Set(d, 1.0 / 120));
    q = hn::MulAdd(q, r, hn::Set(d, 1.0 / 24));
    q = hn::MulAdd(q, r, hn::Set(d, 1.0 / 6));
    q = hn::MulAdd(q, r, hn::Set(d, 0.5));
    q = hn::MulAdd(q, r, hn::Set(d, 1.0));
    q = hn::Mul(q, r);  // e^r - 1
    const V mant = hn::MulAdd(t, q, t);
    // 2^floor(n16/16) = 2^((n16 - j)/16).
    const V k = hn::Mul(n16, hn::Set(d, 0.0625));
#if GRADSERVE_EXP_AVX512
    return V{_mm512_scalef_pd(mant.raw, k.raw)};
#else
    const V kf = hn::Floor(k);
    if constexpr (!kWide) {
      return hn::Mul(mant, Pow2(kf));
    } else {
      const V half = hn::Floor(hn::Mul(kf, hn::Set(d, 0.5)));
      return hn::Mul(hn::Mul(mant, Pow2(half)), Pow2(hn::Sub(kf, half)));
    }
#endif
  }

  // T[j] = 2^(j/16), j the low 4 bits of s.
  static V Table(V s) {
#if GRADSERVE_EXP_AVX512
    const __m512d t_lo = _mm512_setr_pd(1.0, 1.0442737824274138, 1.0905077326652577,
                                        1.1387886347566916, 1.189207115002721, 1.241857812073484,
                                        1.2968395546510096, 1.3542555469368927);
    const __m512d t_hi = _mm512_setr_pd(1.4142135623730951, 1.4768261459394993,
                                        1.5422108254079407, 1.6104903319492543, 1.681792830507429,
                                        1.7562521603732995, 1.8340080864093424, 1.9152065613971474);
    return V{_mm512_permutex2var_pd(t_lo, _mm512_castpd_si512(s.raw), t_hi)};
#else
    alignas(64) static constexpr double kTable[16] = {
        1.0, 1.0442737824274138, 1.0905077326652577, 1.1387886347566916,
        1.189207115002721, 1.241857812073484, 1.2968395546510096, 1.3542555469368927,
        1.4142135623730951, 1.4768261459394993, 1.5422108254079407, 1.6104903319492543,
        1.681792830507429, 1.7562521603732995, 1.8340080864093424, 1.9152065613971474};
    const D d;
    const hn::RebindToSigned<D> di;
    const auto j = hn::And(hn::BitCast(di, s), hn::Set(di, 15));
    return hn::GatherIndex(d, kTable, j);
#endif
  }

  V max_;
};

}  // namespace gradserve::internal::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // GRADSERVE_LIB_VECTOR_EXP_H_ (per target)
