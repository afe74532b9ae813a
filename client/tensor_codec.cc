#include "client/tensor_codec.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gradserve::client {

using gradserve::v1::DATA_TYPE_FLOAT32;
using gradserve::v1::DATA_TYPE_FLOAT64;

void EncodeTensor(const HostTensor& t, TensorFormat format, gradserve::v1::Tensor* out) {
  out->Clear();
  out->mutable_shape()->Add(t.shape.begin(), t.shape.end());
  out->set_dtype(format.dtype);
  if (format.encoding == Encoding::kValues) {
    out->mutable_values()->Add(t.values.begin(), t.values.end());
    return;
  }
  std::string* raw = out->mutable_raw();
  if (format.dtype == DATA_TYPE_FLOAT32) {
    raw->resize(t.values.size() * sizeof(float));
    for (size_t i = 0; i < t.values.size(); ++i) {
      const float f = static_cast<float>(t.values[i]);
      std::memcpy(raw->data() + i * sizeof f, &f, sizeof f);
    }
  } else {
    out->set_dtype(DATA_TYPE_FLOAT64);
    raw->resize(t.values.size() * sizeof(double));
    std::memcpy(raw->data(), t.values.data(), raw->size());
  }
}

absl::StatusOr<HostTensor> DecodeTensor(const gradserve::v1::Tensor& t) {
  HostTensor out;
  out.shape.assign(t.shape().begin(), t.shape().end());
  int64_t count = 1;
  for (int64_t d : out.shape) {
    if (d < 0 || (d > 0 && count > (int64_t{1} << 40) / d)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor has a bad shape ", ShapeString(out.shape)));
    }
    count *= d;
  }
  if (!t.raw().empty()) {
    const size_t item = t.dtype() == DATA_TYPE_FLOAT32 ? 4 : t.dtype() == DATA_TYPE_FLOAT64 ? 8 : 0;
    if (item == 0) return absl::InvalidArgumentError("raw tensor without a float32/float64 dtype");
    if (t.raw().size() != static_cast<uint64_t>(count) * item) {
      return absl::InvalidArgumentError(absl::StrCat("raw tensor has ", t.raw().size(), " bytes, shape ",
                                                     ShapeString(out.shape), " of ", DataTypeName(t.dtype()),
                                                     " needs ", count * item));
    }
    out.values.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      if (item == 4) {
        float f;
        std::memcpy(&f, t.raw().data() + i * 4, 4);
        out.values[i] = f;
      } else {
        std::memcpy(&out.values[i], t.raw().data() + i * 8, 8);
      }
    }
    return out;
  }
  if (t.values_size() != count && !(t.values_size() == 0 && count == 0)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor has ", t.values_size(), " values, shape ",
                                                   ShapeString(out.shape), " needs ", count));
  }
  out.values.assign(t.values().begin(), t.values().end());
  return out;
}

std::string DataTypeName(gradserve::v1::DataType dtype) {
  switch (dtype) {
    case DATA_TYPE_FLOAT32: return "float32";
    case DATA_TYPE_FLOAT64: return "float64";
    default: return "unspecified";
  }
}

}  // namespace gradserve::client
