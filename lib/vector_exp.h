// Vector operations for the shifted exponentials of softmax (internal).
//
// At 1,000 classes the exponentials, not memory, separate a plain kernel from the memory floor
// (README, Kernel benchmarks). VecOps<T> is the small set of packet operations the row kernels need, with
// partial (tail) variants so that a row's last elements take the same vector path:
//  - float with AVX-512: a 10-instruction exp (subtract, scale, vreduceps range reduction,
//    degree-5 polynomial, vscalefps), about 2 ulp, far inside the contract's float32 bound;
//  - every other type and ISA: Eigen's packet exp, about 1 ulp (float64 stays exact to rounding).
#ifndef GRADSERVE_LIB_VECTOR_EXP_H_
#define GRADSERVE_LIB_VECTOR_EXP_H_

#include <cmath>
#include <cstdint>
#include <limits>

#include "Eigen/Core"

#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define GRADSERVE_FAST_EXP_AVX512 1
#endif

namespace gradserve::internal {

// Portable operations over Eigen packets (SSE, AVX2, AVX-512; float and double).
template <typename T>
struct VecOps {
  using P = typename Eigen::internal::packet_traits<T>::type;
  static constexpr int64_t kLanes = Eigen::internal::packet_traits<T>::size;

  // exp(z - shift.max) with Eigen's exp.
  struct Shift {
    P max;
  };
  static Shift MakeShift(T max) { return {Set1(max)}; }
  static P Exp(P z, const Shift& s) {
    return Eigen::internal::pexp(Eigen::internal::psub(z, s.max));
  }

  static P InRegister(P v) { return v; }
  // A non-temporal store to an address aligned to sizeof(P), where the ISA has one.
  static void StoreStream(T* p, P v) {
#if defined(__AVX__)
    if constexpr (std::is_same_v<P, __m256>) return _mm256_stream_ps(p, v);
    if constexpr (std::is_same_v<P, __m256d>) return _mm256_stream_pd(p, v);
#endif
#if defined(__SSE2__)
    if constexpr (std::is_same_v<P, __m128>) return _mm_stream_ps(p, v);
    if constexpr (std::is_same_v<P, __m128d>) return _mm_stream_pd(p, v);
#endif
    Eigen::internal::pstore(p, v);
  }
  // Orders non-temporal stores before whatever follows (they are weakly ordered).
  static void StreamFence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
  }
  static P Set1(T v) { return Eigen::internal::pset1<P>(v); }
  static P Load(const T* p) { return Eigen::internal::ploadu<P>(p); }
  static void Store(T* p, P v) { Eigen::internal::pstoreu(p, v); }
  static P Max(P a, P b) { return Eigen::internal::pmax(a, b); }
  static P Min(P a, P b) { return Eigen::internal::pmin(a, b); }
  static P Add(P a, P b) { return Eigen::internal::padd(a, b); }
  static P Mul(P a, P b) { return Eigen::internal::pmul(a, b); }
  static T ReduceMax(P v) { return Eigen::internal::predux_max(v); }
  static T ReduceMin(P v) { return Eigen::internal::predux_min(v); }
  static T ReduceAdd(P v) { return Eigen::internal::predux(v); }

  // The first k < kLanes lanes of p, the others set to `fill`.
  static P LoadPart(const T* p, int64_t k, T fill) {
    alignas(64) T buf[kLanes];
    for (int64_t j = 0; j < kLanes; ++j) buf[j] = j < k ? p[j] : fill;
    return Eigen::internal::pload<P>(buf);
  }
  static void StorePart(T* p, P v, int64_t k) {
    alignas(64) T buf[kLanes];
    Eigen::internal::pstore(buf, v);
    for (int64_t j = 0; j < k; ++j) p[j] = buf[j];
  }
  // acc + v on the first k lanes only.
  static P AddPart(P acc, P v, int64_t k) {
    alignas(64) T buf[kLanes];
    Eigen::internal::pstore(buf, v);
    for (int64_t j = k; j < kLanes; ++j) buf[j] = T(0);
    return Add(acc, Eigen::internal::pload<P>(buf));
  }
};

#ifdef GRADSERVE_FAST_EXP_AVX512

template <>
struct VecOps<float> {
  using P = __m512;
  static constexpr int64_t kLanes = 16;

  // exp(z - max) = 2^t with t = (z - max)·log2(e). Subtracting first keeps the row's maximum at
  // exactly 2^0 = 1 (the polynomial below has p(0) = 1), so S >= 1, log-probabilities <= 0 and
  // losses >= 0 as in PyTorch. (A single FMA z·log2(e) - max·log2(e) would scale every
  // exponential by the rounding of its constant, a bias that a SUM over rows adds up.)
  struct Shift {
    P log2e, max;
  };
  static Shift MakeShift(float max) {
    return {_mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(max)};
  }
  static P Exp(P z, const Shift& s) {
    return Exp2(_mm512_mul_ps(_mm512_sub_ps(z, s.max), s.log2e));
  }

  // 2^t for t <= 127: 2^floor(t) · p(t - floor(t)), p = 1 + f·q(f) a degree-5 minimax fit of
  // 2^f on [0, 1) with p(0) = 1 exactly (relative error 8e-8, about 2 ulp evaluated in float).
  // vscalefps applies 2^floor(t) itself, underflowing to 0 below -149 and propagating NaN.
  static P Exp2(P t) {
    const P f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    P p = _mm512_set1_ps(0.00186711829f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.00901705492f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.055799894f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.240164459f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693151295f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, t);
  }

  // Keeps a loaded value in a register: GCC would otherwise fold the load into each of its uses
  // (max and min), and loads are what bounds the pipelined row loop.
  static P InRegister(P v) {
    asm("" : "+v"(v));
    return v;
  }
  static void StoreStream(float* p, P v) { _mm512_stream_ps(p, v); }
  static void StreamFence() { _mm_sfence(); }
  static P Set1(float v) { return _mm512_set1_ps(v); }
  static P Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, P v) { _mm512_storeu_ps(p, v); }
  static P Max(P a, P b) { return _mm512_max_ps(a, b); }
  static P Min(P a, P b) { return _mm512_min_ps(a, b); }
  static P Add(P a, P b) { return _mm512_add_ps(a, b); }
  static P Mul(P a, P b) { return _mm512_mul_ps(a, b); }
  static float ReduceMax(P v) { return _mm512_reduce_max_ps(v); }
  static float ReduceMin(P v) { return _mm512_reduce_min_ps(v); }
  static float ReduceAdd(P v) { return _mm512_reduce_add_ps(v); }

  static __mmask16 Mask(int64_t k) { return static_cast<__mmask16>((1u << k) - 1); }
  static P LoadPart(const float* p, int64_t k, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), Mask(k), p);
  }
  static void StorePart(float* p, P v, int64_t k) { _mm512_mask_storeu_ps(p, Mask(k), v); }
  static P AddPart(P acc, P v, int64_t k) { return _mm512_mask_add_ps(acc, Mask(k), acc, v); }
};

template <>
struct VecOps<double> {
  using P = __m512d;
  static constexpr int64_t kLanes = 8;

  struct Shift {
    P max;
  };
  static Shift MakeShift(double max) { return {_mm512_set1_pd(max)}; }
  static P Exp(P z, const Shift& s) { return ExpNonPositive(_mm512_sub_pd(z, s.max)); }

  // exp(x) for x <= 0 to about 1 ulp, like std::exp: x = (n + j/16)·ln2 + r with |r| <= ln2/32,
  // exp(x) = 2^floor(n) · T[j] · (1 + q(r)), T[j] = 2^(j/16) from a 16-entry table held in two
  // registers, q a degree-7 Taylor polynomial (truncation 1e-18). Half the instructions of
  // Eigen's Padé form and no division.
  static P ExpNonPositive(P x) {
    // Below -1000 the result is 0; clamping keeps r small (max(lo, NaN) is NaN: NaN propagates).
    x = _mm512_max_pd(_mm512_set1_pd(-1000.0), x);
    // s = 1.5·2^52 + round(16·x/ln2): its low mantissa bits are that integer.
    const P magic = _mm512_set1_pd(6755399441055744.0);
    const P s = _mm512_fmadd_pd(x, _mm512_set1_pd(23.083120654223414), magic);
    const P n16 = _mm512_sub_pd(s, magic);
    P r = _mm512_fnmadd_pd(n16, _mm512_set1_pd(0.04332169867120683), x);  // ln2/16, high part
    r = _mm512_fnmadd_pd(n16, _mm512_set1_pd(1.1378974990650914e-10), r);  // and low part
    const P t_lo = _mm512_setr_pd(1.0, 1.0442737824274138, 1.0905077326652577,
                                  1.1387886347566916, 1.189207115002721, 1.241857812073484,
                                  1.2968395546510096, 1.3542555469368927);
    const P t_hi = _mm512_setr_pd(1.4142135623730951, 1.4768261459394993, 1.5422108254079407,
                                  1.6104903319492543, 1.681792830507429, 1.7562521603732995,
                                  1.8340080864093424, 1.9152065613971474);
    const P t = _mm512_permutex2var_pd(t_lo, _mm512_castpd_si512(s), t_hi);
    P q = _mm512_set1_pd(1.0 / 5040);
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 720));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 120));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 24));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0 / 6));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0.5));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0));
    q = _mm512_mul_pd(q, r);  // e^r - 1
    // vscalefpd multiplies by 2^floor(n16/16) = 2^((n16 - j)/16).
    return _mm512_scalef_pd(_mm512_fmadd_pd(t, q, t), _mm512_mul_pd(n16, _mm512_set1_pd(0.0625)));
  }

  static P InRegister(P v) {
    asm("" : "+v"(v));
    return v;
  }
  static void StoreStream(double* p, P v) { _mm512_stream_pd(p, v); }
  static void StreamFence() { _mm_sfence(); }
  static P Set1(double v) { return _mm512_set1_pd(v); }
  static P Load(const double* p) { return _mm512_loadu_pd(p); }
  static void Store(double* p, P v) { _mm512_storeu_pd(p, v); }
  static P Max(P a, P b) { return _mm512_max_pd(a, b); }
  static P Min(P a, P b) { return _mm512_min_pd(a, b); }
  static P Add(P a, P b) { return _mm512_add_pd(a, b); }
  static P Mul(P a, P b) { return _mm512_mul_pd(a, b); }
  static double ReduceMax(P v) { return _mm512_reduce_max_pd(v); }
  static double ReduceMin(P v) { return _mm512_reduce_min_pd(v); }
  static double ReduceAdd(P v) { return _mm512_reduce_add_pd(v); }

  static __mmask8 Mask(int64_t k) { return static_cast<__mmask8>((1u << k) - 1); }
  static P LoadPart(const double* p, int64_t k, double fill) {
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), Mask(k), p);
  }
  static void StorePart(double* p, P v, int64_t k) { _mm512_mask_storeu_pd(p, Mask(k), v); }
  static P AddPart(P acc, P v, int64_t k) { return _mm512_mask_add_pd(acc, Mask(k), acc, v); }
};

#endif  // GRADSERVE_FAST_EXP_AVX512

}  // namespace gradserve::internal

#endif  // GRADSERVE_LIB_VECTOR_EXP_H_
