// Aligned, readable tables of tensors for the terminal.
//
// Numbers are right-aligned in columns under labelled axes ("row 0", "class 1"); big tensors show
// their first and last rows and columns around a "…", so a [4096, 1000] result stays a screenful
// (`--format=json` and `--output` give every element).
//
//   std::cout << FormatTensor("grad_logits", t, "float64", {"row", "class"}, TableStyle{});
//   grad_logits  [2, 2] float64
//             class 0   class 1
//     row 0       0.5      -0.5
//     row 1  0.474979 -0.474979
#ifndef GRADSERVE_CLIENT_TABLE_FORMAT_H_
#define GRADSERVE_CLIENT_TABLE_FORMAT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/host_tensor.h"

namespace gradserve::client {

struct TableStyle {
  int precision = 6;     // significant digits
  int max_rows = 20;     // more are elided in the middle
  int max_columns = 10;
};

// `axes` names each dimension ("row", "class"); missing names read "dim".
std::string FormatTensor(absl::string_view name, const HostTensor& t, absl::string_view dtype,
                         const std::vector<std::string>& axes, const TableStyle& style);

// One number as the tables write it: %g with `precision` digits ("nan", "inf", "-inf").
std::string FormatNumber(double v, int precision);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_TABLE_FORMAT_H_
