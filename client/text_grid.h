// Grids of numbers written as text: inline on the command line ("1.75,1.75;0.2,0.1", rows split
// by ';') and CSV files (rows split by newlines). Values are split by ',' and may be padded with
// spaces; "nan", "inf" and "-inf" are numbers too (the server decides what it accepts).
//
// Every error says where: an inline value by its column in the flag's text, a CSV value as
// "path:line:column" the way compilers do, so editors can jump there.
//
//   auto t = ParseInlineGrid("--logits", "1.75,1.75;0.2,0.1");  // shape [2, 2]
//   auto u = ParseInlineGrid("--labels", "1,0");                // shape [2]: no ';', one row
//   auto v = ParseCsvGrid("z.csv", "1,2\n3,4\n");               // shape [2, 2]
#ifndef GRADSERVE_CLIENT_TEXT_GRID_H_
#define GRADSERVE_CLIENT_TEXT_GRID_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/host_tensor.h"

namespace gradserve::client {

// Inline numbers. Without ';' the result is rank 1 (one unbatched example, as PyTorch reads a
// rank-1 input); with ';' it is rank 2, one row per ';'-separated part. A trailing ';' is allowed,
// so "1,2;" is a batch of one row. `flag` names the input in messages ("--logits").
absl::StatusOr<HostTensor> ParseInlineGrid(absl::string_view flag, absl::string_view text);

// A CSV file's contents: always rank 2, [rows, columns]. Blank lines and lines starting with '#'
// are skipped; "\r\n" line ends are fine. A first line without numbers is a header and is skipped
// (pandas' to_csv writes one); a first line whose first cell is empty (",0,1,2") is the header of
// pandas' index column, and that column is dropped too. `path` names the file in messages.
absl::StatusOr<HostTensor> ParseCsvGrid(absl::string_view path, absl::string_view contents);

// One number, trimmed of spaces; false if `text` is not entirely a number.
bool ParseNumber(absl::string_view text, double* value);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_TEXT_GRID_H_
