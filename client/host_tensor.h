// A tensor as the client holds it between reading an input and encoding a request, or between
// decoding a response and printing it: a shape and its elements as doubles, row-major.
//
// Doubles hold every float16, bfloat16, float32 and float64 exactly, and every class index below
// 2^53, so one type serves logits, probabilities, labels and results alike. `dtype` remembers
// what the values came as (a float32 .npy, a float16 response), so requests keep the input's
// precision unless --dtype says otherwise and output files keep the response's.
//
//   HostTensor t{{2, 3}, {1, 2, 3, 4, 5, 6}};  // two rows of three
//   ElementCount(t.shape) == 6; ShapeString(t.shape) == "[2, 3]"  // base/element_count.h
#ifndef GRADSERVE_CLIENT_HOST_TENSOR_H_
#define GRADSERVE_CLIENT_HOST_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "base/element_count.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

struct HostTensor {
  std::vector<int64_t> shape;  // [] is a scalar
  std::vector<double> values;  // product(shape) elements, row-major
  gradserve::v1::DataType dtype = gradserve::v1::DATA_TYPE_FLOAT64;  // what the values came as
};

// "[2, 3]", "[]" for a scalar: the way every message of the client writes a shape.
inline std::string ShapeString(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_HOST_TENSOR_H_
