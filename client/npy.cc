#include "client/npy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "client/half.h"
#include "client/tensor_codec.h"

namespace gradserve::client {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);

// The value of `key` in the header's Python dict literal, e.g. "'<f8'" for 'descr'.
absl::StatusOr<absl::string_view> DictValue(absl::string_view path, absl::string_view dict,
                                            absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = dict.find(quoted);
  if (at == dict.npos) return absl::InvalidArgumentError(absl::StrCat(path, ": header has no ", quoted));
  at = dict.find(':', at);
  if (at == dict.npos) return absl::InvalidArgumentError(absl::StrCat(path, ": header is not a dict"));
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(dict.substr(at + 1));
  // The value ends at the comma or brace that closes it; tuples and strings hold no braces.
  const char close = rest.empty() ? 0 : rest.front() == '(' ? ')' : rest.front() == '\'' ? '\'' : 0;
  size_t end = close ? rest.find(close, 1) : rest.find_first_of(",}");
  if (end == rest.npos) return absl::InvalidArgumentError(absl::StrCat(path, ": header value of ", quoted, " is cut off"));
  return rest.substr(0, close ? end + 1 : end);
}

absl::StatusOr<NpyLayout> ParseHeader(absl::string_view path, absl::string_view dict) {
  NpyLayout h;
  GRADSERVE_ASSIGN_OR_RETURN(absl::string_view descr, DictValue(path, dict, "descr"));
  descr = absl::StripAsciiWhitespace(descr);
  int size = 0;
  if (descr.size() < 5 || descr.front() != '\'' || descr.back() != '\'' ||
      !absl::SimpleAtoi(descr.substr(3, descr.size() - 4), &size)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported dtype ", descr,
                                                   " (structured arrays are not tensors)"));
  }
  h.descr = std::string(descr.substr(1, descr.size() - 2));
  h.byte_order = descr[1];
  h.kind = descr[2];
  h.item_size = size;
  const bool known = (h.kind == 'f' && (size == 2 || size == 4 || size == 8)) ||
                     ((h.kind == 'i' || h.kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                     (h.kind == 'b' && size == 1);
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": unsupported dtype ", descr, "; use float16, float32, float64, an integer type or bool"));
  }
  GRADSERVE_ASSIGN_OR_RETURN(absl::string_view order, DictValue(path, dict, "fortran_order"));
  h.fortran_order = absl::StripAsciiWhitespace(order) == "True";
  GRADSERVE_ASSIGN_OR_RETURN(absl::string_view shape, DictValue(path, dict, "shape"));
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')') {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad shape ", shape));
  }
  for (absl::string_view dim : absl::StrSplit(shape.substr(1, shape.size() - 2), ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(dim, &d) || d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad shape ", shape));
    }
    h.shape.push_back(d);
  }
  return h;
}

// One element at `p`, in the file's byte order, as a double.
double ReadElement(const NpyLayout& h, const char* p) {
  // Assemble the value's bits most significant byte first, whatever the file's order; the host
  // is little-endian (as the wire format and '<' files are), so the low bytes of `bits` are then
  // the element in host order.
  const size_t size = std::min<size_t>(h.item_size, 8);  // ParseHeader allows 1 to 8
  const bool big = h.byte_order == '>';
  uint64_t bits = 0;
  for (size_t i = 0; i < size; ++i) bits = bits << 8 | static_cast<unsigned char>(p[big ? i : size - 1 - i]);
  auto as = [&bits](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, &bits, sizeof v);
    return static_cast<double>(v);
  };
  switch (h.kind) {
    case 'f':
      if (h.item_size == 2) return HalfToDouble(static_cast<uint16_t>(bits));
      return h.item_size == 4 ? as(float{}) : as(double{});
    case 'b': return bits != 0;
    case 'i':
      switch (h.item_size) {
        case 1: return as(int8_t{});
        case 2: return as(int16_t{});
        case 4: return as(int32_t{});
        default: return as(int64_t{});
      }
    default:
      switch (h.item_size) {
        case 1: return as(uint8_t{});
        case 2: return as(uint16_t{});
        case 4: return as(uint32_t{});
        default: return as(uint64_t{});
      }
  }
}

// Reorders `values` from Fortran (column-major) to C (row-major) order.
std::vector<double> FortranToC(const std::vector<int64_t>& shape, const std::vector<double>& values) {
  std::vector<double> out(values.size());
  std::vector<int64_t> index(shape.size(), 0);
  for (size_t c = 0; c < out.size(); ++c) {
    int64_t f = 0, stride = 1;
    for (size_t k = 0; k < shape.size(); ++k) {
      f += index[k] * stride;
      stride *= shape[k];
    }
    out[c] = values[f];
    for (size_t k = shape.size(); k-- > 0;) {  // next C-order index: the last dimension fastest
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

}  // namespace

uint64_t NpyHeaderLength(absl::string_view first12) {
  if (first12.size() < 12 || first12.substr(0, 6) != kMagic) return 0;
  const auto u8 = [&first12](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(first12[i])); };
  const int major = static_cast<int>(u8(6));
  if (major == 1) return 10 + (u8(8) | u8(9) << 8);
  return 12 + (u8(8) | u8(9) << 8 | u8(10) << 16 | u8(11) << 24);
}

absl::StatusOr<NpyLayout> ParseNpyLayout(absl::string_view path, absl::string_view bytes, uint64_t file_size) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != kMagic) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a .npy file (no \\x93NUMPY magic)"));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported .npy version ", major));
  }
  const auto u8 = [&bytes](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])); };
  const size_t length_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + length_bytes) return absl::InvalidArgumentError(absl::StrCat(path, ": header is cut off"));
  uint64_t header_len = u8(8) | u8(9) << 8;
  if (major > 1) header_len |= u8(10) << 16 | u8(11) << 24;
  const uint64_t data_start = 8 + length_bytes + header_len;
  if (bytes.size() < data_start || file_size < data_start) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header says ", header_len,
                                                   " bytes, the file ends before"));
  }
  GRADSERVE_ASSIGN_OR_RETURN(NpyLayout h, ParseHeader(path, bytes.substr(8 + length_bytes, header_len)));
  h.data_offset = data_start;
  h.dtype = h.kind != 'f'       ? gradserve::v1::DATA_TYPE_FLOAT64
            : h.item_size == 2 ? gradserve::v1::DATA_TYPE_FLOAT16
            : h.item_size == 4 ? gradserve::v1::DATA_TYPE_FLOAT32
                               : gradserve::v1::DATA_TYPE_FLOAT64;
  // 64-bit arithmetic with overflow checks: the shape is untrusted.
  uint64_t count = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && count > UINT64_MAX / 8 / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": shape is too large"));
    }
    count *= static_cast<uint64_t>(d);
  }
  const uint64_t need = count * h.item_size;
  const uint64_t have = file_size - data_start;
  if (have != need) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": data is ", have, " bytes, shape (",
                                                   absl::StrJoin(h.shape, ", "), ") of ", h.descr,
                                                   " needs ", need));
  }
  return h;
}

void DecodeNpyElements(const NpyLayout& layout, const char* data, size_t n, double* out) {
  if (layout.byte_order != '>' && layout.kind == 'f' && layout.item_size == 8) {
    std::memcpy(out, data, n * 8);
    return;
  }
  for (size_t i = 0; i < n; ++i) out[i] = ReadElement(layout, data + i * layout.item_size);
}

absl::StatusOr<HostTensor> ParseNpy(absl::string_view path, absl::string_view bytes) {
  GRADSERVE_ASSIGN_OR_RETURN(NpyLayout h, ParseNpyLayout(path, bytes, bytes.size()));
  HostTensor out;
  out.shape = h.shape;
  out.dtype = h.dtype;
  out.values.resize((bytes.size() - h.data_offset) / h.item_size);
  DecodeNpyElements(h, bytes.data() + h.data_offset, out.values.size(), out.values.data());
  if (h.fortran_order && h.shape.size() > 1) out.values = FortranToC(h.shape, out.values);
  return out;
}

gradserve::v1::DataType NpyStoredType(gradserve::v1::DataType dtype) {
  if (dtype == gradserve::v1::DATA_TYPE_BFLOAT16) return gradserve::v1::DATA_TYPE_FLOAT32;
  return ItemSize(dtype) == 0 ? gradserve::v1::DATA_TYPE_FLOAT64 : dtype;
}

std::string NpyHeader(const std::vector<int64_t>& shape, gradserve::v1::DataType dtype) {
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";  // Python's one-element tuple
  const size_t item = ItemSize(NpyStoredType(dtype));
  std::string header = absl::StrCat("{'descr': '<f", item, "', 'fortran_order': False, 'shape': (", dims, "), }");
  // The data must start at a multiple of 64 bytes; the header ends in '\n'.
  const size_t unpadded = kMagic.size() + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
}

std::string EncodeNpyData(const double* values, size_t n, gradserve::v1::DataType dtype) {
  const gradserve::v1::DataType stored = NpyStoredType(dtype);
  std::string out(n * ItemSize(stored), '\0');
  EncodeRawValues(values, n, stored, out.data());
  return out;
}

std::string EncodeNpy(const HostTensor& t, gradserve::v1::DataType dtype) {
  return NpyHeader(t.shape, dtype) + EncodeNpyData(t.values.data(), t.values.size(), dtype);
}

}  // namespace gradserve::client
