// A tensor input read by rows, for batches too big to hold at once (client/chunked.h): a C-order
// .npy file is read on demand with pread, a range of rows at a time, straight into a request's
// raw bytes when the file already has the wire's dtype; any other input (inline, CSV, JSON, a
// Fortran-order .npy) is read whole, as ReadTensorArg does.
//
//   absl::StatusOr<RowSource> z = RowSource::Open("--logits", "z.npy");
//   gradserve::v1::Tensor chunk;
//   GRADSERVE_RETURN_IF_ERROR(z->Read(0, 128, {DATA_TYPE_FLOAT32, Encoding::kRaw}, &chunk));
#ifndef GRADSERVE_CLIENT_ROW_SOURCE_H_
#define GRADSERVE_CLIENT_ROW_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"
#include "client/npy.h"
#include "client/tensor_codec.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

class RowSource {
 public:
  // Errors are InvalidArgument naming the flag or file, as ReadTensorArg's.
  static absl::StatusOr<RowSource> Open(absl::string_view flag, const std::string& arg);

  const std::vector<int64_t>& shape() const { return shape_; }
  gradserve::v1::DataType dtype() const { return dtype_; }

  // Rows [begin, begin + count) of a rank-2 input as a [count, columns] tensor in `format`
  // (its dtype must be resolved, not UNSPECIFIED). Thread-safe: reads do not move a file offset.
  absl::Status Read(int64_t begin, int64_t count, TensorFormat format, gradserve::v1::Tensor* out) const;

 private:
  std::string path_;
  std::vector<int64_t> shape_;
  gradserve::v1::DataType dtype_ = gradserve::v1::DATA_TYPE_FLOAT64;
  std::shared_ptr<const int> fd_;  // an open .npy read by rows; null: `whole_` holds the data
  NpyLayout layout_;
  std::shared_ptr<const HostTensor> whole_;
};

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_ROW_SOURCE_H_
