#include "client/chunk_output.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/host_tensor.h"
#include "client/npy.h"
#include "client/output_file.h"
#include "client/tensor_codec.h"

namespace gradserve::client {

void AppendRows(const gradserve::v1::Tensor& chunk, gradserve::v1::Tensor* merged) {
  if (merged->shape_size() == 0) {
    *merged = chunk;
    return;
  }
  merged->set_shape(0, merged->shape(0) + (chunk.shape_size() > 0 ? chunk.shape(0) : 0));
  merged->mutable_raw()->append(chunk.raw());
  merged->mutable_values()->Add(chunk.values().begin(), chunk.values().end());
}

RowFileWriter::~RowFileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status RowFileWriter::Write(const std::string& bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status RowFileWriter::Append(const gradserve::v1::Tensor& chunk) {
  if (chunk.shape_size() == 0) return absl::InvalidArgumentError("response tensor has no rows");
  if (file_ == nullptr) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("cannot write ", path_, ": ", std::strerror(errno)));
    npy_ = absl::EndsWith(absl::AsciiStrToLower(path_), ".npy");
    row_shape_.assign(chunk.shape().begin() + 1, chunk.shape().end());
    dtype_ = chunk.dtype() == gradserve::v1::DATA_TYPE_UNSPECIFIED ? gradserve::v1::DATA_TYPE_FLOAT64 : chunk.dtype();
    if (npy_) {
      std::vector<int64_t> shape{total_rows_};
      shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
      GRADSERVE_RETURN_IF_ERROR(Write(NpyHeader(shape, dtype_)));
    }
  }
  rows_ += chunk.shape(0);
  // The wire's little-endian bytes are the file's when the .npy stores the dtype itself.
  if (npy_ && !chunk.raw().empty() && NpyStoredType(dtype_) == dtype_) return Write(chunk.raw());
  GRADSERVE_ASSIGN_OR_RETURN(HostTensor t, DecodeTensor(chunk));
  return Write(npy_ ? EncodeNpyData(t.values.data(), t.values.size(), dtype_) : EncodeCsv(t, dtype_));
}

absl::Status RowFileWriter::Close() {
  if (file_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("--output ", path_, ": nothing was received"));
  const int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) return absl::InvalidArgumentError(absl::StrCat("cannot write ", path_, ": ", std::strerror(errno)));
  if (rows_ != total_rows_) {
    return absl::InvalidArgumentError(absl::StrCat("--output ", path_, ": ", rows_, " of ", total_rows_, " rows received"));
  }
  return absl::OkStatus();
}

std::string RowFileWriter::Describe() const {
  std::vector<int64_t> shape{total_rows_};
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  return absl::StrCat(ShapeString(shape), " ", DataTypeName(dtype_));
}

}  // namespace gradserve::client
