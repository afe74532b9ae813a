// A tensor as the client holds it between reading an input and encoding a request, or between
// decoding a response and printing it: a shape and its elements as doubles, row-major.
//
// Doubles hold every float32 and float64 exactly, and every class index below 2^53, so one type
// serves logits, probabilities, labels and results alike.
//
//   HostTensor t{{2, 3}, {1, 2, 3, 4, 5, 6}};  // two rows of three
//   NumElements(t.shape) == 6; ShapeString(t.shape) == "[2, 3]"
#ifndef GRADSERVE_CLIENT_HOST_TENSOR_H_
#define GRADSERVE_CLIENT_HOST_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"

namespace gradserve::client {

struct HostTensor {
  std::vector<int64_t> shape;  // [] is a scalar
  std::vector<double> values;  // product(shape) elements, row-major
};

// The product of `shape` (1 for a scalar). Callers validate dimensions as non-negative first.
inline int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// "[2, 3]", "[]" for a scalar: the way every message of the client writes a shape.
inline std::string ShapeString(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_HOST_TENSOR_H_
