// NumPy's .npy format (versions 1.0, 2.0 and 3.0), read and written without numpy.
//
// Reading accepts little- and big-endian floats (f2 is not supported), signed and unsigned
// integers and bools, in C or Fortran order; everything becomes doubles in C order. Errors name
// the file and what is wrong with it ("z.npy: data is 12 bytes, shape (2, 3) of <f8 needs 48").
//
//   absl::StatusOr<HostTensor> t = ParseNpy("z.npy", bytes);
//   std::string file = EncodeNpy(*t, /*float32=*/false);  // '<f8', version 1.0
#ifndef GRADSERVE_CLIENT_NPY_H_
#define GRADSERVE_CLIENT_NPY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"

namespace gradserve::client {

absl::StatusOr<HostTensor> ParseNpy(absl::string_view path, absl::string_view bytes);

// The .npy file for `t`, as '<f4' when `float32` (values rounded to float) else '<f8'.
std::string EncodeNpy(const HostTensor& t, bool float32);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_NPY_H_
