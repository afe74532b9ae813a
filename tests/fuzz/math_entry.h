// Fuzz entry point (b): random shapes, values and options, decoded from the fuzzer's bytes, fed to
// the math library directly (lib/cross_entropy.h, lib/softmax.h) in float32 and float64.
//
// What is guaranteed, and so checked, for valid inputs with finite logits:
//   - CrossEntropy succeeds with both methods; invalid inputs (non-finite logits, a label out of
//     range, a negative weight, smoothing outside [0, 1], a row not summing to 1) are
//     INVALID_ARGUMENT with both methods.
//   - The FUSED and CHAIN_RULE gradients are finite whenever the result is representable: each
//     element is r_i·(s_i a_ij - q_ij) with |.| <= |r_i|·max weight, so when that bound and r_i
//     itself (dL/dl_i = grad_loss / MEAN's denominator, formed in the dtype) are below the dtype's
//     largest value (and MEAN's denominator is not 0), a NaN or infinity is a bug.
//   - MEAN with a zero weight sum (PyTorch's NaN case): every non-ignored row's gradient is NaN
//     and every ignored row's is 0.
//   - Both gradients match a float64 reference (the same inputs widened) within the contract's float32
//     bound, max(1e-5, 0.1·classes·2^-24)·scale, or 1e-12·scale in float64. scale is
//     max(1, max |reference|, max_i |r_i|·s_i): docs/api.md's max(1, max |float64 result|) widened by
//     the size of the terms that cancel, because a large upstream grad_loss (or weight) on a row
//     that is already nearly right scales the rounding of a_ij while the result stays small.
//   - The loss matches the reference the same way where the logits' range (max - min) is
//     representable in the dtype (beyond it z - max overflows and, as in PyTorch, 0·inf is NaN),
//     with scale max(1, |reference|, Σ_i s_i) (over MEAN's denominator; max_i s_i for NONE): a
//     row's loss is s_i·logsumexp(z_i) - <q_i, z_i>, and a weight of 1e6 scales its rounding too.
//   - Softmax rows are finite, in [0, 1] and sum to 1 within classes·2^-20 (float32) or
//     classes·2^-48 (float64).
// Used by math_fuzzer.cc (libFuzzer) and by fuzz_regression_test.cc (ctest replay).
#ifndef GRADSERVE_TESTS_FUZZ_MATH_ENTRY_H_
#define GRADSERVE_TESTS_FUZZ_MATH_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace gradserve::fuzz {

// Empty when every property holds, else what failed (with the decoded case).
std::string CheckMathInput(const uint8_t* data, size_t size);

}  // namespace gradserve::fuzz

#endif  // GRADSERVE_TESTS_FUZZ_MATH_ENTRY_H_
