// Row-major Eigen views used by every function of the math library.
//
// Callers own their buffers (a request's bytes, a response's buffer, a std::vector); the library
// only ever sees Eigen::Map views over them, so no tensor is copied on the way in or out.
//
//   std::vector<float> buf(batch * classes);
//   gradserve::MatrixMap<float> grad(buf.data(), batch, classes);
#ifndef GRADSERVE_LIB_TENSOR_H_
#define GRADSERVE_LIB_TENSOR_H_

#include <cstdint>

#include "Eigen/Core"

namespace gradserve {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;
template <typename T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;

// An empty view, for optional outputs and inputs.
template <typename T>
MatrixMap<T> NoMatrix() {
  return MatrixMap<T>(nullptr, 0, 0);
}
template <typename T>
ConstMatrixMap<T> NoConstMatrix() {
  return ConstMatrixMap<T>(nullptr, 0, 0);
}

// Views of an owned matrix, where a function takes a map.
template <typename T>
MatrixMap<T> View(RowMatrix<T>& m) {
  return MatrixMap<T>(m.data(), m.rows(), m.cols());
}
template <typename T>
ConstMatrixMap<T> ConstView(const RowMatrix<T>& m) {
  return ConstMatrixMap<T>(m.data(), m.rows(), m.cols());
}

}  // namespace gradserve

#endif  // GRADSERVE_LIB_TENSOR_H_
