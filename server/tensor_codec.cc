#include "server/tensor_codec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/element_count.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw tensors are little-endian");

namespace gradserve {
namespace {

bool IsKnownDtype(v1::DataType d) {
  return d == v1::DATA_TYPE_UNSPECIFIED || d == v1::DATA_TYPE_FLOAT32 ||
         d == v1::DATA_TYPE_FLOAT64 || d == v1::DATA_TYPE_FLOAT16 || d == v1::DATA_TYPE_BFLOAT16;
}

constexpr char kRawDtypes[] =
    "DATA_TYPE_FLOAT32, DATA_TYPE_FLOAT64, DATA_TYPE_FLOAT16 or DATA_TYPE_BFLOAT16";

int64_t DtypeSize(v1::DataType d) {
  return d == v1::DATA_TYPE_FLOAT32 ? 4 : d == v1::DATA_TYPE_FLOAT64 ? 8 : 2;
}

template <typename T>
constexpr v1::DataType DtypeOf() {
  return std::is_same_v<T, float> ? v1::DATA_TYPE_FLOAT32 : v1::DATA_TYPE_FLOAT64;
}

// Element k of a length-checked raw buffer of dtype `d`, exactly, as a double.
double RawValue(const char* bytes, v1::DataType d, int64_t k) {
  switch (d) {
    case v1::DATA_TYPE_FLOAT32: {
      float v;
      std::memcpy(&v, bytes + 4 * k, 4);
      return v;
    }
    case v1::DATA_TYPE_FLOAT64: {
      double v;
      std::memcpy(&v, bytes + 8 * k, 8);
      return v;
    }
    default: {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * k, 2);
      return HalfToFloat(*HalfTypeOf(d), h);
    }
  }
}

// `v` rounded to `type`; InvalidArgument when a finite `v` becomes ±Inf there.
absl::StatusOr<uint16_t> RoundToHalf(double v, HalfType type, const char* name, const char* field,
                                     int64_t k) {
  const uint16_t h = DoubleToHalf(type, v);
  if (std::isfinite(v) && HalfIsNonFinite(type, h)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.%s[%d] is %g, which rounds to %sInf in %s (largest finite %g)", name, field, k, v,
        v > 0 ? "+" : "-", HalfTypeName(type), HalfMax(type)));
  }
  return h;
}

// The checks every tensor gets, whatever it decodes to: element count, known dtype, one of
// raw / values, and the byte or value count matching the shape.
struct Layout {
  int64_t n = 0;
  std::vector<int64_t> shape;
  bool has_raw = false, has_values = false;
};

absl::StatusOr<Layout> CheckLayout(const v1::Tensor& t, const char* name, const Limits& limits) {
  const auto n_or = ElementCount(t, name, limits);
  if (!n_or.ok()) return n_or.status();
  Layout l;
  l.n = *n_or;
  const v1::DataType d = t.dtype();
  if (!IsKnownDtype(d)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s.dtype %d is not a known DataType", name, d));
  }
  l.has_raw = !t.raw().empty();
  l.has_values = t.values_size() > 0;
  l.shape.assign(t.shape().begin(), t.shape().end());
  // Formatted only for an error: a long shape costs an allocation per dimension.
  const auto shape = [&l] { return FormatShape(l.shape); };
  if (l.has_raw && l.has_values) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has both raw and values set; exactly one must carry the data", name));
  }
  if (l.has_raw) {
    if (d == v1::DATA_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrFormat("%s.raw needs dtype %s", name, kRawDtypes));
    }
    const int64_t want = l.n * DtypeSize(d);  // n <= max_elements, so no overflow
    if (static_cast<int64_t>(t.raw().size()) != want) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.raw has %d bytes, but shape %s of %s needs %d × %d = %d", name, t.raw().size(),
          shape(), DtypeName(d), l.n, DtypeSize(d), want));
    }
  } else if (l.has_values) {
    if (t.values_size() != l.n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.values has %d numbers, but shape %s needs %d", name, t.values_size(), shape(), l.n));
    }
  } else if (l.n != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has shape %s (%d elements) but neither raw nor values", name, shape(), l.n));
  }
  return l;
}

}  // namespace

std::optional<HalfType> HalfTypeOf(v1::DataType d) {
  if (d == v1::DATA_TYPE_FLOAT16) return HalfType::kFloat16;
  if (d == v1::DATA_TYPE_BFLOAT16) return HalfType::kBFloat16;
  return std::nullopt;
}

const char* DtypeName(v1::DataType d) {
  switch (d) {
    case v1::DATA_TYPE_FLOAT32: return "float32";
    case v1::DATA_TYPE_FLOAT64: return "float64";
    case v1::DATA_TYPE_FLOAT16: return "float16";
    case v1::DATA_TYPE_BFLOAT16: return "bfloat16";
    default: return "unspecified";
  }
}

absl::StatusOr<TensorFormat> LogitsFormat(const v1::Tensor& logits) {
  const v1::DataType d = logits.dtype();
  if (!IsKnownDtype(d)) {
    return absl::InvalidArgumentError(absl::StrFormat("logits.dtype %d is not a known DataType", d));
  }
  if (!logits.raw().empty() && logits.values_size() > 0) {
    return absl::InvalidArgumentError("logits has both raw and values set; exactly one must carry the data");
  }
  if (!logits.raw().empty()) {
    if (d == v1::DATA_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("logits.raw needs dtype ", kRawDtypes));
    }
    return TensorFormat{d, Encoding::kRaw};
  }
  if (logits.values_size() > 0) {
    return TensorFormat{d == v1::DATA_TYPE_UNSPECIFIED ? v1::DATA_TYPE_FLOAT64 : d, Encoding::kValues};
  }
  // No data (an empty tensor): a dtype given means raw was intended.
  return d == v1::DATA_TYPE_UNSPECIFIED ? TensorFormat{v1::DATA_TYPE_FLOAT64, Encoding::kValues}
                                        : TensorFormat{d, Encoding::kRaw};
}

absl::StatusOr<int64_t> ElementCount(const v1::Tensor& t, const char* name, const Limits& limits) {
  for (int64_t d : t.shape()) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.shape %s has a negative dimension", name,
          FormatShape(t.shape())));
    }
  }
  // Capped, so no overflow; a zero dimension anywhere makes the tensor empty, whatever the others.
  const int64_t n = CappedElementCount(t.shape(), limits.max_elements);
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
  auto layout = CheckLayout(t, name, limits);
  if (!layout.ok()) return layout.status();
  const int64_t n = layout->n;
  const v1::DataType d = t.dtype();
  InputTensor<T> out;
  out.shape_ = std::move(layout->shape);
  out.size_ = n;
  if (layout->has_raw) {
    const char* bytes = t.raw().data();
    const bool aligned = reinterpret_cast<uintptr_t>(bytes) % alignof(T) == 0;
    if (d == DtypeOf<T>() && aligned) {
      out.data_ = reinterpret_cast<const T*>(bytes);
      return out;
    }
    out.converted_.resize(n);
    for (int64_t k = 0; k < n; ++k) out.converted_[k] = static_cast<T>(RawValue(bytes, d, k));
    out.data_ = out.converted_.data();
    return out;
  }
  if (layout->has_values) {
    if (const std::optional<HalfType> half = HalfTypeOf(d)) {
      out.converted_.resize(n);
      for (int64_t k = 0; k < n; ++k) {
        const auto h = RoundToHalf(t.values(k), *half, name, "values", k);
        if (!h.ok()) return h.status();
        out.converted_[k] = static_cast<T>(HalfToFloat(*half, *h));
      }
      out.data_ = out.converted_.data();
    } else if constexpr (std::is_same_v<T, double>) {
      out.data_ = t.values().data();
    } else {
      out.converted_.assign(t.values().begin(), t.values().end());
      out.data_ = out.converted_.data();
    }
    return out;
  }
  // Not null even when empty: to the library a null candidate means none was given.
  static constexpr T kEmpty[1] = {};
  out.data_ = kEmpty;
  return out;
}

absl::StatusOr<InputTensor<uint16_t>> DecodeHalfTensor(const v1::Tensor& t, const char* name,
                                                       const Limits& limits, HalfType type) {
  auto layout = CheckLayout(t, name, limits);
  if (!layout.ok()) return layout.status();
  const int64_t n = layout->n;
  const v1::DataType d = t.dtype();
  InputTensor<uint16_t> out;
  out.shape_ = std::move(layout->shape);
  out.size_ = n;
  static constexpr uint16_t kEmpty[1] = {};
  out.data_ = kEmpty;
  if (!layout->has_raw && !layout->has_values) return out;
  const char* bytes = t.raw().data();
  if (layout->has_raw && HalfTypeOf(d) == type) {
    if (reinterpret_cast<uintptr_t>(bytes) % alignof(uint16_t) == 0) {
      out.data_ = reinterpret_cast<const uint16_t*>(bytes);
    } else {
      out.converted_.resize(n);
      std::memcpy(out.converted_.data(), bytes, 2 * n);
      out.data_ = out.converted_.data();
    }
    return out;
  }
  // Another dtype: each number is rounded to `type` once (values with a half dtype first to
  // theirs, as the API says of every half `values`).
  const std::optional<HalfType> values_half = layout->has_values ? HalfTypeOf(d) : std::nullopt;
  const char* field = layout->has_raw ? "raw" : "values";
  out.converted_.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    double v = layout->has_raw ? RawValue(bytes, d, k) : t.values(k);
    if (values_half && *values_half != type) {
      const auto own = RoundToHalf(v, *values_half, name, field, k);
      if (!own.ok()) return own.status();
      v = HalfToFloat(*values_half, *own);
    }
    const auto h = RoundToHalf(v, type, name, field, k);
    if (!h.ok()) return h.status();
    out.converted_[k] = *h;
  }
  out.data_ = out.converted_.data();
  return out;
}

template <typename T>
OutputTensor<T>::OutputTensor(v1::Tensor* proto, const std::vector<int64_t>& shape,
                              Encoding encoding, HalfType half)
    : proto_(proto), half_(half) {
  const int64_t n = ElementCount(shape);
  proto->mutable_shape()->Assign(shape.begin(), shape.end());
  if constexpr (std::is_same_v<T, uint16_t>) {
    proto->set_dtype(half == HalfType::kFloat16 ? v1::DATA_TYPE_FLOAT16 : v1::DATA_TYPE_BFLOAT16);
  } else {
    proto->set_dtype(DtypeOf<T>());
  }
  if (encoding == Encoding::kRaw) {
    // Every byte is written by the library call before the commit: no zero-fill (which costs
    // about a millisecond per 16 MB). The operation returns the size itself: GCC 12's
    // resize_and_overwrite passes it the grown capacity instead when the string grows.
    std::string* raw = proto->mutable_raw();
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    raw->resize_and_overwrite(bytes, [bytes](char*, size_t) { return bytes; });
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
  if (staged_.empty()) return;
  if constexpr (std::is_same_v<T, uint16_t>) {
    auto* values = proto_->mutable_values();
    values->Resize(static_cast<int>(staged_.size()), 0.0);
    for (size_t k = 0; k < staged_.size(); ++k) values->Set(static_cast<int>(k), HalfToFloat(half_, staged_[k]));
  } else {
    proto_->mutable_values()->Assign(staged_.begin(), staged_.end());
  }
}

int64_t WireBytes(int64_t elements, v1::DataType dtype, Encoding encoding) {
  return elements * (encoding == Encoding::kValues ? 8 : DtypeSize(dtype));
}

template class OutputTensor<float>;
template class OutputTensor<double>;
template class OutputTensor<uint16_t>;
template absl::StatusOr<InputTensor<float>> DecodeTensor<float>(const v1::Tensor&, const char*, const Limits&);
template absl::StatusOr<InputTensor<double>> DecodeTensor<double>(const v1::Tensor&, const char*, const Limits&);

}  // namespace gradserve
