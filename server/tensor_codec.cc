#include "server/tensor_codec.h"

#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw tensors are little-endian");

namespace gradserve {
namespace {

const char* DtypeName(v1::DataType d) {
  return d == v1::DATA_TYPE_FLOAT32 ? "float32" : d == v1::DATA_TYPE_FLOAT64 ? "float64" : "unspecified";
}

int64_t DtypeSize(v1::DataType d) { return d == v1::DATA_TYPE_FLOAT32 ? 4 : 8; }

template <typename T>
constexpr v1::DataType DtypeOf() {
  return std::is_same_v<T, float> ? v1::DATA_TYPE_FLOAT32 : v1::DATA_TYPE_FLOAT64;
}

}  // namespace

absl::StatusOr<TensorFormat> LogitsFormat(const v1::Tensor& logits) {
  const v1::DataType d = logits.dtype();
  if (d != v1::DATA_TYPE_UNSPECIFIED && d != v1::DATA_TYPE_FLOAT32 && d != v1::DATA_TYPE_FLOAT64) {
    return absl::InvalidArgumentError(absl::StrFormat("logits.dtype %d is not a known DataType", d));
  }
  if (!logits.raw().empty() && logits.values_size() > 0) {
    return absl::InvalidArgumentError("logits has both raw and values set; exactly one must carry the data");
  }
  if (!logits.raw().empty()) {
    if (d == v1::DATA_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          "logits.raw needs dtype DATA_TYPE_FLOAT32 or DATA_TYPE_FLOAT64");
    }
    return TensorFormat{d, Encoding::kRaw};
  }
  if (logits.values_size() > 0) {
    return TensorFormat{d == v1::DATA_TYPE_FLOAT32 ? d : v1::DATA_TYPE_FLOAT64, Encoding::kValues};
  }
  // No data (an empty tensor): a dtype given means raw was intended.
  return d == v1::DATA_TYPE_UNSPECIFIED ? TensorFormat{v1::DATA_TYPE_FLOAT64, Encoding::kValues}
                                        : TensorFormat{d, Encoding::kRaw};
}

absl::StatusOr<int64_t> ElementCount(const v1::Tensor& t, const char* name, const Limits& limits) {
  int64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.shape %s has a negative dimension", name,
          FormatShape(t.shape())));
    }
    if (d != 0 && n > limits.max_elements / d) n = limits.max_elements + 1;  // no overflow
    else n *= d;
  }
  // A zero dimension anywhere makes the tensor empty, whatever the others are.
  for (int64_t d : t.shape()) if (d == 0) n = 0;
  if (n > limits.max_elements) {
    double elements = 1;  // for the message only: a double cannot overflow here
    for (int64_t d : t.shape()) elements *= static_cast<double>(d);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s with shape %s has %.6g elements, over the limit of %d set by --max_elements", name,
        FormatShape(t.shape()), elements, limits.max_elements));
  }
  return n;
}

template <typename T>
absl::StatusOr<InputTensor<T>> DecodeTensor(const v1::Tensor& t, const char* name,
                                            const Limits& limits) {
  const auto n_or = ElementCount(t, name, limits);
  if (!n_or.ok()) return n_or.status();
  const int64_t n = *n_or;
  const v1::DataType d = t.dtype();
  if (d != v1::DATA_TYPE_UNSPECIFIED && d != v1::DATA_TYPE_FLOAT32 && d != v1::DATA_TYPE_FLOAT64) {
    return absl::InvalidArgumentError(absl::StrFormat("%s.dtype %d is not a known DataType", name, d));
  }
  const bool has_raw = !t.raw().empty(), has_values = t.values_size() > 0;
  InputTensor<T> out;
  out.shape_.assign(t.shape().begin(), t.shape().end());
  out.size_ = n;
  // Formatted only for an error: a long shape costs an allocation per dimension.
  const auto shape = [&out] { return FormatShape(out.shape_); };
  if (has_raw && has_values) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has both raw and values set; exactly one must carry the data", name));
  }
  if (has_raw) {
    if (d == v1::DATA_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.raw needs dtype DATA_TYPE_FLOAT32 or DATA_TYPE_FLOAT64", name));
    }
    const int64_t want = n * DtypeSize(d);  // n <= max_elements, so no overflow
    if (static_cast<int64_t>(t.raw().size()) != want) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.raw has %d bytes, but shape %s of %s needs %d × %d = %d", name, t.raw().size(),
          shape(), DtypeName(d), n, DtypeSize(d), want));
    }
    const char* bytes = t.raw().data();
    const bool aligned = reinterpret_cast<uintptr_t>(bytes) % alignof(T) == 0;
    if (d == DtypeOf<T>() && aligned) {
      out.data_ = reinterpret_cast<const T*>(bytes);
      return out;
    }
    out.converted_.resize(n);
    if (d == v1::DATA_TYPE_FLOAT32) {
      for (int64_t k = 0; k < n; ++k) {
        float v;
        std::memcpy(&v, bytes + 4 * k, 4);
        out.converted_[k] = static_cast<T>(v);
      }
    } else {
      for (int64_t k = 0; k < n; ++k) {
        double v;
        std::memcpy(&v, bytes + 8 * k, 8);
        out.converted_[k] = static_cast<T>(v);
      }
    }
    out.data_ = out.converted_.data();
    return out;
  }
  if (has_values) {
    if (t.values_size() != n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.values has %d numbers, but shape %s needs %d", name, t.values_size(), shape(), n));
    }
    if constexpr (std::is_same_v<T, double>) {
      out.data_ = t.values().data();
    } else {
      out.converted_.assign(t.values().begin(), t.values().end());
      out.data_ = out.converted_.data();
    }
    return out;
  }
  if (n != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has shape %s (%d elements) but neither raw nor values", name, shape(), n));
  }
  // Not null even when empty: to the library a null candidate means none was given.
  static constexpr T kEmpty[1] = {};
  out.data_ = kEmpty;
  return out;
}

template <typename T>
OutputTensor<T>::OutputTensor(v1::Tensor* proto, const std::vector<int64_t>& shape,
                              Encoding encoding)
    : proto_(proto) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  proto->mutable_shape()->Assign(shape.begin(), shape.end());
  proto->set_dtype(DtypeOf<T>());
  if (encoding == Encoding::kRaw) {
    std::string* raw = proto->mutable_raw();
    raw->resize(n * sizeof(T));
    data_ = reinterpret_cast<T*>(raw->data());
  } else if constexpr (std::is_same_v<T, double>) {
    proto->mutable_values()->Resize(static_cast<int>(n), 0.0);
    data_ = proto->mutable_values()->mutable_data();
  } else {
    staged_.resize(n);
    data_ = staged_.data();
  }
}

template <typename T>
void OutputTensor<T>::Commit() {
  if (!staged_.empty()) proto_->mutable_values()->Assign(staged_.begin(), staged_.end());
}

int64_t WireBytes(int64_t elements, v1::DataType dtype, Encoding encoding) {
  return elements * (encoding == Encoding::kValues ? 8 : DtypeSize(dtype));
}

template class OutputTensor<float>;
template class OutputTensor<double>;
template absl::StatusOr<InputTensor<float>> DecodeTensor<float>(const v1::Tensor&, const char*, const Limits&);
template absl::StatusOr<InputTensor<double>> DecodeTensor<double>(const v1::Tensor&, const char*, const Limits&);

}  // namespace gradserve
