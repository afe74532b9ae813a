// Converts between the client's HostTensor and the wire's gradserve.v1.Tensor.
//
// Requests carry data either as `raw` little-endian bytes of the dtype (compact, the default) or
// as `values` doubles (what grpcurl users write); responses come back in the request's choice.
// The raw element types are float64, float32, float16 and bfloat16 (half.h); narrowing rounds to
// nearest-even once, widening is exact.
//
//   gradserve::v1::Tensor wire;
//   EncodeTensor(host, {gradserve::v1::DATA_TYPE_FLOAT32, Encoding::kRaw}, &wire);
//   absl::StatusOr<HostTensor> back = DecodeTensor(wire);
#ifndef GRADSERVE_CLIENT_TENSOR_CODEC_H_
#define GRADSERVE_CLIENT_TENSOR_CODEC_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "client/host_tensor.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

enum class Encoding { kRaw, kValues };

struct TensorFormat {
  // UNSPECIFIED: the logits' own dtype (requests.h resolves it before encoding).
  gradserve::v1::DataType dtype = gradserve::v1::DATA_TYPE_FLOAT64;
  Encoding encoding = Encoding::kRaw;
};

// Bytes per element of a raw dtype: 2, 4 or 8; 0 for UNSPECIFIED or an unknown value.
size_t ItemSize(gradserve::v1::DataType dtype);

// `n` doubles as little-endian `dtype` elements at `out` (n · ItemSize bytes), rounded to
// nearest-even; and back, exactly. `dtype` must have an item size.
void EncodeRawValues(const double* values, size_t n, gradserve::v1::DataType dtype, char* out);
void DecodeRawValues(const char* raw, size_t n, gradserve::v1::DataType dtype, double* out);

// Writes `t` into `out` (replacing what it held) in `format.dtype` (UNSPECIFIED: t.dtype). Raw
// data is rounded to the dtype; values keep the doubles and let dtype tell the server what to
// compute in (it rounds them to a half dtype itself).
void EncodeTensor(const HostTensor& t, TensorFormat format, gradserve::v1::Tensor* out);

// The elements of a wire tensor as doubles, with its dtype; InvalidArgument when its bytes do not
// match its shape and dtype, so a bad response is reported rather than misread.
absl::StatusOr<HostTensor> DecodeTensor(const gradserve::v1::Tensor& t);

// "float16" / "bfloat16" / "float32" / "float64" / "unspecified", for tables.
std::string DataTypeName(gradserve::v1::DataType dtype);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_TENSOR_CODEC_H_
