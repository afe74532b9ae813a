// The numbers of a gradserve.v1.Tensor as doubles, whatever its encoding (values, or raw
// little-endian float32/float64/float16/bfloat16): what tests compare responses with.
#ifndef GRADSERVE_TESTS_TENSOR_VALUES_H_
#define GRADSERVE_TESTS_TENSOR_VALUES_H_

#include <cstring>
#include <vector>

#include "gradserve/v1/gradserve.pb.h"
#include "lib/half.h"

namespace gradserve::testing {

inline std::vector<double> TensorValues(const v1::Tensor& t) {
  if (t.values_size() > 0) return {t.values().begin(), t.values().end()};
  std::vector<double> out;
  // (memcpy from or to an empty vector's null data() is undefined, even for 0 bytes)
  if (t.dtype() == v1::DATA_TYPE_FLOAT16 || t.dtype() == v1::DATA_TYPE_BFLOAT16) {
    const HalfType type = t.dtype() == v1::DATA_TYPE_FLOAT16 ? HalfType::kFloat16 : HalfType::kBFloat16;
    for (size_t k = 0; k + 1 < t.raw().size(); k += 2) {
      uint16_t h;
      std::memcpy(&h, t.raw().data() + k, 2);
      out.push_back(HalfToFloat(type, h));
    }
  } else if (t.dtype() == v1::DATA_TYPE_FLOAT32) {
    std::vector<float> f(t.raw().size() / sizeof(float));
    if (!f.empty()) std::memcpy(f.data(), t.raw().data(), f.size() * sizeof(float));
    out.assign(f.begin(), f.end());
  } else {
    out.resize(t.raw().size() / sizeof(double));
    if (!out.empty()) std::memcpy(out.data(), t.raw().data(), out.size() * sizeof(double));
  }
  return out;
}

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_TENSOR_VALUES_H_
