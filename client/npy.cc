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
#include "client/status_macros.h"

namespace gradserve::client {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);

struct Header {
  char byte_order;  // '<', '>' or '|'
  char kind;        // 'f', 'i', 'u' or 'b'
  int item_size;
  bool fortran_order;
  std::vector<int64_t> shape;
};

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

absl::StatusOr<Header> ParseHeader(absl::string_view path, absl::string_view dict) {
  Header h;
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN(absl::string_view descr, DictValue(path, dict, "descr"));
  descr = absl::StripAsciiWhitespace(descr);
  int size = 0;
  if (descr.size() < 5 || descr.front() != '\'' || descr.back() != '\'' ||
      !absl::SimpleAtoi(descr.substr(3, descr.size() - 4), &size)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported dtype ", descr,
                                                   " (structured arrays are not tensors)"));
  }
  h.byte_order = descr[1];
  h.kind = descr[2];
  h.item_size = size;
  const bool known = (h.kind == 'f' && (size == 4 || size == 8)) ||
                     ((h.kind == 'i' || h.kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                     (h.kind == 'b' && size == 1);
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": unsupported dtype ", descr, "; use float32, float64, an integer type or bool"));
  }
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN(absl::string_view order, DictValue(path, dict, "fortran_order"));
  h.fortran_order = absl::StripAsciiWhitespace(order) == "True";
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN(absl::string_view shape, DictValue(path, dict, "shape"));
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
double ReadElement(const Header& h, const char* p) {
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
    case 'f': return h.item_size == 4 ? as(float{}) : as(double{});
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

absl::StatusOr<HostTensor> ParseNpy(absl::string_view path, absl::string_view bytes) {
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
  const size_t data_start = 8 + length_bytes + header_len;
  if (bytes.size() < data_start) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header says ", header_len,
                                                   " bytes, the file ends before"));
  }
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN(Header h, ParseHeader(path, bytes.substr(8 + length_bytes, header_len)));
  // 64-bit arithmetic with overflow checks: the shape is untrusted.
  uint64_t count = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && count > UINT64_MAX / 8 / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": shape is too large"));
    }
    count *= static_cast<uint64_t>(d);
  }
  const uint64_t need = count * h.item_size;
  const uint64_t have = bytes.size() - data_start;
  const std::string descr = absl::StrCat(std::string(1, h.byte_order), std::string(1, h.kind), h.item_size);
  if (have != need) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": data is ", have, " bytes, shape (",
                                                   absl::StrJoin(h.shape, ", "), ") of ", descr,
                                                   " needs ", need));
  }
  HostTensor out;
  out.shape = h.shape;
  out.values.resize(count);
  for (uint64_t i = 0; i < count; ++i) out.values[i] = ReadElement(h, bytes.data() + data_start + i * h.item_size);
  if (h.fortran_order && h.shape.size() > 1) out.values = FortranToC(h.shape, out.values);
  return out;
}

std::string EncodeNpy(const HostTensor& t, bool float32) {
  std::string dims = absl::StrJoin(t.shape, ", ");
  if (t.shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string header = absl::StrCat("{'descr': '", float32 ? "<f4" : "<f8",
                                    "', 'fortran_order': False, 'shape': (", dims, "), }");
  // The data must start at a multiple of 64 bytes; the header ends in '\n'.
  const size_t unpadded = kMagic.size() + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  const size_t item = float32 ? 4 : 8;
  const size_t start = out.size();
  out.resize(start + t.values.size() * item);
  for (size_t i = 0; i < t.values.size(); ++i) {
    if (float32) {
      const float f = static_cast<float>(t.values[i]);
      std::memcpy(&out[start + i * item], &f, item);
    } else {
      std::memcpy(&out[start + i * item], &t.values[i], item);
    }
  }
  return out;
}

}  // namespace gradserve::client
