// Helpers of the integration tests that call the real gradserve-server: tensors and targets
// built inline, and a Backward request that must succeed.
#ifndef GRADSERVE_TESTS_SERVER_TEST_UTIL_H_
#define GRADSERVE_TESTS_SERVER_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"

namespace gradserve::testing {

namespace pb = ::gradserve::v1;

inline pb::Tensor Values(std::vector<int64_t> shape, std::vector<double> v, pb::DataType d = pb::DATA_TYPE_UNSPECIFIED) {
  pb::Tensor t;
  t.mutable_shape()->Assign(shape.begin(), shape.end());
  t.set_dtype(d);
  t.mutable_values()->Assign(v.begin(), v.end());
  return t;
}

template <typename T>
pb::Tensor Raw(std::vector<int64_t> shape, const std::vector<T>& v) {
  pb::Tensor t;
  t.mutable_shape()->Assign(shape.begin(), shape.end());
  t.set_dtype(sizeof(T) == 4 ? pb::DATA_TYPE_FLOAT32 : pb::DATA_TYPE_FLOAT64);
  t.set_raw(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)));
  return t;
}

inline std::vector<int64_t> Shape(const pb::Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

// Forward of the motivating logits (1.75, 1.75), values encoding: probabilities (0.5, 0.5).
inline pb::ForwardRequest SeedForward() {
  pb::ForwardRequest req;
  req.mutable_logits()->add_shape(2);
  req.mutable_logits()->add_values(1.75);
  req.mutable_logits()->add_values(1.75);
  return req;
}

inline pb::Targets Labels(std::vector<int64_t> ids) {
  pb::Targets t;
  t.mutable_class_indices()->mutable_values()->Assign(ids.begin(), ids.end());
  return t;
}

inline pb::Targets Probs(pb::Tensor p) {
  pb::Targets t;
  *t.mutable_probabilities() = std::move(p);
  return t;
}

inline void ExpectNear(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], tol) << "element " << k;
}

// logits [2, 3], labels (0, 2): valid in every respect.
inline pb::BackwardRequest GoodBackward() {
  pb::BackwardRequest req;
  *req.mutable_logits() = Values({2, 3}, {1, 2, 3, 4, 5, 6});
  *req.mutable_targets() = Labels({0, 2});
  return req;
}

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_SERVER_TEST_UTIL_H_
