// The math fuzzer's input format: the fuzzer's bytes decoded, front to back, into one
// cross-entropy case (shape, logits of every kind, options, targets, upstream gradient, and now
// and then one injected invalid input). Split from math_entry.cc, which checks the properties
// (see math_entry.h); the order of reads is the corpus's format, so changing it invalidates
// tests/fuzz/corpus and tests/fuzz/regressions.
#ifndef GRADSERVE_TESTS_FUZZ_MATH_CASE_H_
#define GRADSERVE_TESTS_FUZZ_MATH_CASE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/cross_entropy.h"
#include "lib/tensor.h"

namespace gradserve::fuzz {

// The fuzzer's bytes, read front to back; zeros once they run out.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = v << 8 | U8();
    return v;
  }
  double Unit() { return static_cast<double>(U64() >> 11) * 0x1p-53; }  // [0, 1)
  double Signed() { return 2.0 * Unit() - 1.0; }                         // [-1, 1)

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// One decoded case in dtype T. Decoded in place (not copyable: options.class_weights views
// weights).
template <typename T>
struct MathCase {
  MathCase() = default;
  MathCase(const MathCase&) = delete;
  MathCase& operator=(const MathCase&) = delete;

  // Reads the case from `in`; every number is representable in T, so a float64 reference sees
  // the same inputs as a float32 computation.
  void Decode(Bytes& in);
  // The case, for failure messages only (formatting it for every input would be slow).
  std::string Describe() const;

  RowMatrix<T> z;               // logits
  bool finite = true;           // z has no NaN or infinity
  LossOptions options;          // class_weights views `weights`
  std::vector<double> weights;  // empty: every weight is 1
  bool prob_targets = false;    // probabilities, else class indices
  std::vector<int64_t> ids;     // class-index targets
  RowMatrix<T> probs;           // probability targets
  std::vector<T> grad_loss;     // empty: 1
  bool invalid = false;         // an invalid input was injected
};

extern template struct MathCase<float>;
extern template struct MathCase<double>;

}  // namespace gradserve::fuzz

#endif  // GRADSERVE_TESTS_FUZZ_MATH_CASE_H_
