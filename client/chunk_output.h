// The receiving half of a chunked call (client/chunked.h): response tensors of consecutive row
// ranges concatenated into one, and the --output tensor streamed into its file as chunks arrive,
// so the whole batch is never held.
//
//   RowFileWriter file("g.npy", /*total_rows=*/1024);
//   for (each chunk's response r) GRADSERVE_RETURN_IF_ERROR(file.Append(r.grad_logits()));
//   GRADSERVE_RETURN_IF_ERROR(file.Close());
#ifndef GRADSERVE_CLIENT_CHUNK_OUTPUT_H_
#define GRADSERVE_CLIENT_CHUNK_OUTPUT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

// Appends `chunk`'s rows (its first dimension) to `merged`; the first chunk is copied whole.
void AppendRows(const gradserve::v1::Tensor& chunk, gradserve::v1::Tensor* merged);

// A .npy (in the chunks' dtype, bfloat16 as float32) or .csv file written chunk by chunk. The
// .npy header, which holds the whole shape, is written with the first chunk: [total_rows, the
// chunk's other dimensions].
class RowFileWriter {
 public:
  RowFileWriter(std::string path, int64_t total_rows) : path_(std::move(path)), total_rows_(total_rows) {}
  ~RowFileWriter();
  RowFileWriter(const RowFileWriter&) = delete;
  RowFileWriter& operator=(const RowFileWriter&) = delete;

  absl::Status Append(const gradserve::v1::Tensor& chunk);
  // InvalidArgument unless every row arrived and the file was written and closed.
  absl::Status Close();
  // "[1024, 128000] float32", once a chunk has arrived.
  std::string Describe() const;

 private:
  absl::Status Write(const std::string& bytes);

  std::string path_;
  int64_t total_rows_;
  int64_t rows_ = 0;
  std::vector<int64_t> row_shape_;  // the dimensions after the first
  gradserve::v1::DataType dtype_ = gradserve::v1::DATA_TYPE_UNSPECIFIED;
  FILE* file_ = nullptr;
  bool npy_ = true;
};

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_CHUNK_OUTPUT_H_
