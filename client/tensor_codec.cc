#include "client/tensor_codec.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/half.h"

namespace gradserve::client {

using gradserve::v1::DATA_TYPE_BFLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT32;
using gradserve::v1::DATA_TYPE_FLOAT64;
using gradserve::v1::DATA_TYPE_UNSPECIFIED;

size_t ItemSize(gradserve::v1::DataType dtype) {
  switch (dtype) {
    case DATA_TYPE_FLOAT16:
    case DATA_TYPE_BFLOAT16: return 2;
    case DATA_TYPE_FLOAT32: return 4;
    case DATA_TYPE_FLOAT64: return 8;
    default: return 0;
  }
}

// The host is little-endian, as the wire is: elements are copied byte for byte.
void EncodeRawValues(const double* values, size_t n, gradserve::v1::DataType dtype, char* out) {
  switch (dtype) {
    case DATA_TYPE_FLOAT64:
      std::memcpy(out, values, n * 8);
      return;
    case DATA_TYPE_FLOAT32:
      for (size_t i = 0; i < n; ++i) {
        const float f = static_cast<float>(values[i]);  // one rounding, to nearest-even
        std::memcpy(out + i * 4, &f, 4);
      }
      return;
    default: {
      const bool half = dtype == DATA_TYPE_FLOAT16;
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = half ? DoubleToHalf(values[i]) : DoubleToBfloat16(values[i]);
        std::memcpy(out + i * 2, &h, 2);
      }
    }
  }
}

void DecodeRawValues(const char* raw, size_t n, gradserve::v1::DataType dtype, double* out) {
  switch (dtype) {
    case DATA_TYPE_FLOAT64:
      std::memcpy(out, raw, n * 8);
      return;
    case DATA_TYPE_FLOAT32:
      for (size_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, raw + i * 4, 4);
        out[i] = f;
      }
      return;
    default: {
      const bool half = dtype == DATA_TYPE_FLOAT16;
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, raw + i * 2, 2);
        out[i] = half ? HalfToDouble(h) : Bfloat16ToDouble(h);
      }
    }
  }
}

void EncodeTensor(const HostTensor& t, TensorFormat format, gradserve::v1::Tensor* out) {
  out->Clear();
  out->mutable_shape()->Add(t.shape.begin(), t.shape.end());
  gradserve::v1::DataType dtype = format.dtype == DATA_TYPE_UNSPECIFIED ? t.dtype : format.dtype;
  if (ItemSize(dtype) == 0) dtype = DATA_TYPE_FLOAT64;
  out->set_dtype(dtype);
  if (format.encoding == Encoding::kValues) {
    out->mutable_values()->Add(t.values.begin(), t.values.end());
    return;
  }
  std::string* raw = out->mutable_raw();
  raw->resize(t.values.size() * ItemSize(dtype));
  EncodeRawValues(t.values.data(), t.values.size(), dtype, raw->data());
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
  out.dtype = t.dtype() == DATA_TYPE_UNSPECIFIED ? DATA_TYPE_FLOAT64 : t.dtype();
  if (!t.raw().empty()) {
    const size_t item = ItemSize(t.dtype());
    if (item == 0) {
      return absl::InvalidArgumentError(absl::StrCat("raw tensor without a float16/bfloat16/float32/float64 dtype (",
                                                     static_cast<int>(t.dtype()), ")"));
    }
    if (t.raw().size() != static_cast<uint64_t>(count) * item) {
      return absl::InvalidArgumentError(absl::StrCat("raw tensor has ", t.raw().size(), " bytes, shape ",
                                                     ShapeString(out.shape), " of ", DataTypeName(t.dtype()),
                                                     " needs ", count * item));
    }
    out.values.resize(count);
    DecodeRawValues(t.raw().data(), count, t.dtype(), out.values.data());
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
    case DATA_TYPE_FLOAT16: return "float16";
    case DATA_TYPE_BFLOAT16: return "bfloat16";
    case DATA_TYPE_FLOAT32: return "float32";
    case DATA_TYPE_FLOAT64: return "float64";
    default: return "unspecified";
  }
}

}  // namespace gradserve::client
