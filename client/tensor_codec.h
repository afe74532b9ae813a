// Converts between the client's HostTensor and the wire's gradserve.v1.Tensor.
//
// Requests carry data either as `raw` little-endian bytes of the dtype (compact, the default) or
// as `values` doubles (what grpcurl users write); responses come back in the request's choice.
//
//   gradserve::v1::Tensor wire;
//   EncodeTensor(host, {gradserve::v1::DATA_TYPE_FLOAT32, Encoding::kRaw}, &wire);
//   absl::StatusOr<HostTensor> back = DecodeTensor(wire);
#ifndef GRADSERVE_CLIENT_TENSOR_CODEC_H_
#define GRADSERVE_CLIENT_TENSOR_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/host_tensor.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

enum class Encoding { kRaw, kValues };

struct TensorFormat {
  gradserve::v1::DataType dtype = gradserve::v1::DATA_TYPE_FLOAT64;
  Encoding encoding = Encoding::kRaw;
};

// Writes `t` into `out` (replacing what it held). float32 raw data is rounded to float; values
// keep the doubles and let dtype tell the server to compute in float32.
void EncodeTensor(const HostTensor& t, TensorFormat format, gradserve::v1::Tensor* out);

// The elements of a wire tensor as doubles; InvalidArgument when its bytes do not match its
// shape and dtype, so a bad response is reported rather than misread.
absl::StatusOr<HostTensor> DecodeTensor(const gradserve::v1::Tensor& t);

// "float32" / "float64" / "unspecified", for tables.
std::string DataTypeName(gradserve::v1::DataType dtype);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_TENSOR_CODEC_H_
