// Tensor inputs as given on the command line: inline numbers, or a .csv, .json or .npy file.
//
//   --logits 1.75,1.75             inline: one example of two classes, shape [2]
//   --logits '1,2;3,4'             inline: ';' between rows, shape [2, 2]
//   --logits z.npy                 a file, chosen by its extension (.csv, .json, .npy)
//
// Errors are InvalidArgument and say where: the flag and column for inline text, the file with
// line and column for text files, the file for .npy.
//
//   absl::StatusOr<HostTensor> z = ReadTensorArg("--logits", "1.75,1.75");
//   absl::StatusOr<std::vector<int64_t>> y = ToClassIndices("--labels", labels_tensor);
#ifndef GRADSERVE_CLIENT_INPUTS_H_
#define GRADSERVE_CLIENT_INPUTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"

namespace gradserve::client {

// Reads `arg`, given to `flag` ("--logits"): a file when it ends in .csv, .json or .npy (any
// case), else inline numbers.
absl::StatusOr<HostTensor> ReadTensorArg(absl::string_view flag, const std::string& arg);

// Class indices from a tensor of integers: rank 0 (one unbatched example), rank 1, or a single
// column [N, 1] as a one-column CSV reads.
absl::StatusOr<std::vector<int64_t>> ToClassIndices(absl::string_view flag, const HostTensor& t);

// Gives `t` the shape `want` when it holds the same number of elements but was written with a
// different rank, e.g. an inline "0,1" ([2]) for logits read from a one-row CSV ([1, 2]). Tensors
// of the same rank keep their shape, so a transposed file still reaches the server's shape check.
HostTensor FitToShape(HostTensor t, const std::vector<int64_t>& want);

// The whole contents of `path`, or an InvalidArgument naming it and the reason.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_INPUTS_H_
