// NumPy's .npy format (versions 1.0, 2.0 and 3.0), read and written without numpy.
//
// Reading accepts little- and big-endian floats (f2, f4, f8), signed and unsigned integers and
// bools, in C or Fortran order; everything becomes doubles in C order, and the tensor's dtype is
// the file's float type (float64 for integers and bools). Errors name the file and what is wrong
// with it ("z.npy: data is 12 bytes, shape (2, 3) of <f8 needs 48").
//
// Writing uses the dtype's own type, except bfloat16, which numpy does not have: it is written
// as float32 ('<f4'), which holds every bfloat16 exactly.
//
//   absl::StatusOr<HostTensor> t = ParseNpy("z.npy", bytes);
//   std::string file = EncodeNpy(*t, gradserve::v1::DATA_TYPE_FLOAT64);  // '<f8', version 1.0
//
// For files too big to hold (client/chunked.h), ParseNpyLayout reads only the header, and
// NpyHeader + EncodeNpyData write a file piece by piece.
#ifndef GRADSERVE_CLIENT_NPY_H_
#define GRADSERVE_CLIENT_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

// Where a .npy file's data is and how to read it.
struct NpyLayout {
  std::vector<int64_t> shape;
  char byte_order = '<';  // '<', '>' or '|'
  char kind = 'f';        // 'f', 'i', 'u' or 'b'
  int item_size = 8;
  bool fortran_order = false;
  uint64_t data_offset = 0;  // bytes before the first element
  gradserve::v1::DataType dtype = gradserve::v1::DATA_TYPE_FLOAT64;  // as ParseNpy sets it
  std::string descr;      // "<f4", for messages
};

// The layout from the file's first bytes (`head` must hold the whole header; 12 bytes tell its
// length, see NpyHeaderLength). `file_size` is checked against shape · item size.
absl::StatusOr<NpyLayout> ParseNpyLayout(absl::string_view path, absl::string_view head, uint64_t file_size);
// Bytes of magic, version, length and header, from the first 12 bytes of a file (0 if they are
// not a .npy start; ParseNpyLayout then says why).
uint64_t NpyHeaderLength(absl::string_view first12);

// `n` consecutive elements at `data` (in the file's byte order and type) as doubles.
void DecodeNpyElements(const NpyLayout& layout, const char* data, size_t n, double* out);

absl::StatusOr<HostTensor> ParseNpy(absl::string_view path, absl::string_view bytes);

// The type a tensor of `dtype` is stored as: itself, but bfloat16 as float32.
gradserve::v1::DataType NpyStoredType(gradserve::v1::DataType dtype);
// Magic, version 1.0 and the padded header of a C-order file of `shape` and NpyStoredType(dtype).
std::string NpyHeader(const std::vector<int64_t>& shape, gradserve::v1::DataType dtype);
// The data bytes of `n` values as NpyStoredType(dtype), rounded to it.
std::string EncodeNpyData(const double* values, size_t n, gradserve::v1::DataType dtype);
// The whole .npy file for `t` in `dtype`.
std::string EncodeNpy(const HostTensor& t, gradserve::v1::DataType dtype);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_NPY_H_
