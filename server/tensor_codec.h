// The one place that converts between gradserve.v1.Tensor messages and the library's views.
//
// Inputs are read in place when their bytes already hold the compute dtype (raw of the same
// dtype, or `values` for float64); otherwise they are converted once. Half-precision tensors
// (FLOAT16, BFLOAT16) are 2-byte bit patterns: widened exactly when the compute dtype is float32
// or float64, read in place (or rounded to, from other dtypes) by DecodeHalfTensor for a
// half-precision request. `values` with a half dtype are first rounded to it; a finite number
// that rounds to ±Inf there is InvalidArgument. The byte length is checked
// against shape × dtype in 64-bit arithmetic before anything is mapped. Outputs are sized first
// and the math writes straight into the response's buffer.
//
//   GRADSERVE_ASSIGN_OR_RETURN(TensorFormat fmt, LogitsFormat(req.logits()));
//   GRADSERVE_ASSIGN_OR_RETURN(InputTensor<float> z, DecodeTensor<float>(req.logits(), "logits", limits));
//   OutputTensor<float> g(resp.mutable_grad_logits(), z.shape(), fmt.encoding);
//   ... math writes g.data() ...
//   g.Commit();
#ifndef GRADSERVE_SERVER_TENSOR_CODEC_H_
#define GRADSERVE_SERVER_TENSOR_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/shape_format.h"
#include "gradserve/v1/gradserve.pb.h"
#include "lib/half.h"
#include "server/server_options.h"

namespace gradserve {

enum class Encoding { kRaw, kValues };

// How a request's logits are encoded, which decides the compute dtype and the reply's encoding.
struct TensorFormat {
  v1::DataType dtype;  // FLOAT32, FLOAT64, FLOAT16 or BFLOAT16
  Encoding encoding;
};

// The half type of a FLOAT16 / BFLOAT16 dtype; nullopt for the others.
std::optional<HalfType> HalfTypeOf(v1::DataType dtype);

// "float32", "float64", "float16", "bfloat16" (or "unspecified").
const char* DtypeName(v1::DataType dtype);

// The logits' dtype and encoding; InvalidArgument for raw without a dtype or an unknown dtype.
absl::StatusOr<TensorFormat> LogitsFormat(const v1::Tensor& logits);

// product(shape), checked: InvalidArgument for a negative dimension, ResourceExhausted above
// `limits.max_elements` (checked before the product can overflow).
absl::StatusOr<int64_t> ElementCount(const v1::Tensor& t, const char* name, const Limits& limits);

// A decoded input, as T: a view of the request's bytes, or a converted copy. T is float, double,
// or uint16_t for half-precision bit patterns (see DecodeHalfTensor).
template <typename T>
class InputTensor {
 public:
  const T* data() const { return data_; }  // never null, even for 0 elements
  int64_t size() const { return size_; }
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  template <typename U>
  friend absl::StatusOr<InputTensor<U>> DecodeTensor(const v1::Tensor&, const char*, const Limits&);
  friend absl::StatusOr<InputTensor<uint16_t>> DecodeHalfTensor(const v1::Tensor&, const char*,
                                                                const Limits&, HalfType);
  const T* data_ = nullptr;
  int64_t size_ = 0;
  std::vector<int64_t> shape_;
  std::vector<T> converted_;
};

// Checks and decodes `t` (named `name` in errors) into T (float or double).
template <typename T>
absl::StatusOr<InputTensor<T>> DecodeTensor(const v1::Tensor& t, const char* name,
                                            const Limits& limits);

// Checks and decodes `t` into `type` bit patterns: raw of that type in place, anything else
// rounded to it (to nearest even; a finite number that becomes ±Inf is InvalidArgument).
absl::StatusOr<InputTensor<uint16_t>> DecodeHalfTensor(const v1::Tensor& t, const char* name,
                                                       const Limits& limits, HalfType type);

// An output of `shape` in the given encoding, with dtype T: data() points into the message's own
// buffer (raw bytes, or `values` for float64); float32 `values` are widened by Commit(). With T =
// uint16_t the output holds `half` bit patterns (dtype FLOAT16 or BFLOAT16), widened for `values`.
template <typename T>
class OutputTensor {
 public:
  OutputTensor(v1::Tensor* proto, const std::vector<int64_t>& shape, Encoding encoding,
               HalfType half = HalfType::kFloat16);
  OutputTensor(const OutputTensor&) = delete;  // data() may point into staged_
  OutputTensor& operator=(const OutputTensor&) = delete;
  T* data() { return data_; }
  void Commit();

 private:
  v1::Tensor* proto_;
  T* data_;
  HalfType half_;
  std::vector<T> staged_;  // float32 or half values before widening
};

// Bytes a tensor of `elements` takes on the wire in `encoding` (payload only): 8 per value, or
// the dtype's size for raw (2 for the half types).
int64_t WireBytes(int64_t elements, v1::DataType dtype, Encoding encoding);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_TENSOR_CODEC_H_
