#include "client/text_grid.h"

#include <cstdlib>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace gradserve::client {
namespace {

// Where a value starts: its line (the 1-based index of the part between separators; 0 for "the
// whole input") and its 1-based column in that line.
struct Place {
  int64_t line;
  int64_t column;
};
using Locate = std::function<std::string(const Place&)>;

// Splits `text` into rows at `row_sep` and values at ','. `skip_row` drops blank or comment rows;
// `locate` turns a place into the prefix of an error message. Rank 1 unless `force_rank2` or a
// separator was seen.
absl::StatusOr<HostTensor> ParseGrid(absl::string_view text, char row_sep, bool force_rank2,
                                     const std::function<bool(int64_t, absl::string_view)>& skip_row,
                                     const Locate& locate) {
  HostTensor out;
  int64_t rows = 0, columns = -1, first_line = 0, line = 0;
  bool saw_separator = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(row_sep, start);
    if (end == absl::string_view::npos) end = text.size();
    else saw_separator = true;
    absl::string_view row_text = text.substr(start, end - start);
    ++line;
    if (!row_text.empty() && row_text.back() == '\r') row_text.remove_suffix(1);
    if (!skip_row(line, row_text)) {
      int64_t count = 0;
      size_t value_start = 0;
      while (true) {
        size_t comma = row_text.find(',', value_start);
        if (comma == absl::string_view::npos) comma = row_text.size();
        absl::string_view cell = row_text.substr(value_start, comma - value_start);
        double v;
        if (!ParseNumber(cell, &v)) {
          const std::string shown(absl::StripAsciiWhitespace(cell));
          const size_t pad = cell.find_first_not_of(" \t");
          const Place at{line, int64_t(value_start + (pad == cell.npos ? 0 : pad)) + 1};
          return absl::InvalidArgumentError(
              absl::StrCat(locate(at), shown.empty() ? "expected a number, found nothing"
                                                     : "expected a number, found \"" + shown + "\""));
        }
        out.values.push_back(v);
        ++count;
        if (comma == row_text.size()) break;
        value_start = comma + 1;
      }
      if (columns < 0) {
        columns = count;
        first_line = line;
      } else if (count != columns) {
        return absl::InvalidArgumentError(absl::StrCat(
            locate({line, 1}), "row has ", count, count == 1 ? " value" : " values", ", expected ", columns,
            " like the first row", row_sep == '\n' ? absl::StrCat(" (line ", first_line, ")") : ""));
      }
      ++rows;
    }
    start = end + 1;
  }
  if (rows == 0) return absl::InvalidArgumentError(locate({0, 0}) + "no numbers");
  if (force_rank2 || saw_separator) {
    out.shape = {rows, columns};
  } else {
    out.shape = {columns};
  }
  return out;
}

}  // namespace

bool ParseNumber(absl::string_view text, double* value) {
  const std::string s(absl::StripAsciiWhitespace(text));
  if (s.empty()) return false;
  char* end = nullptr;
  // strtod also reads hex floats, and subnormals (for which it sets ERANGE): numbers all the same.
  *value = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

absl::StatusOr<HostTensor> ParseInlineGrid(absl::string_view flag, absl::string_view text) {
  // Only a trailing ';' may leave an empty row ("1,2;" is one row of a batch).
  absl::string_view body = text;
  const bool trailing = !body.empty() && body.back() == ';';
  if (trailing) body.remove_suffix(1);
  // Columns in the flag's text: rows are on one line, so add the lengths of the rows before.
  std::vector<size_t> row_offsets{0};
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == ';') row_offsets.push_back(i + 1);
  }
  auto never_skip = [](int64_t, absl::string_view) { return false; };
  const std::string quoted = absl::StrCat(flag, " \"", text, "\": ");
  auto locate = [&](const Place& at) {
    if (at.line == 0) return quoted;
    return absl::StrCat(quoted, "column ", row_offsets[at.line - 1] + at.column, ": ");
  };
  return ParseGrid(body, ';', trailing, never_skip, locate);
}

absl::StatusOr<HostTensor> ParseCsvGrid(absl::string_view path, absl::string_view contents) {
  auto blank = [](absl::string_view row) {
    absl::string_view t = absl::StripAsciiWhitespace(row);
    return t.empty() || t.front() == '#';
  };
  // A first line without numbers is a header (pandas writes one). One whose first cell is empty
  // (",0,1,2") is the header of pandas' index column, which is dropped from every row; a data
  // line never starts with an empty cell.
  int64_t header_line = 0;
  bool index_column = false;
  int64_t line = 0;
  for (absl::string_view row : absl::StrSplit(contents, '\n')) {
    ++line;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (blank(row)) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(row, ',');
    index_column = cells.size() > 1 && absl::StripAsciiWhitespace(cells[0]).empty();
    bool any_number = false;
    double v;
    for (absl::string_view cell : cells) any_number = any_number || ParseNumber(cell, &v);
    if (index_column || !any_number) header_line = line;
    break;
  }
  auto skip = [&](int64_t at, absl::string_view row) { return at == header_line || blank(row); };
  auto locate = [&](const Place& at) {
    if (at.line == 0) return absl::StrCat(path, ": ");
    return absl::StrCat(path, ":", at.line, ":", at.column, ": ");
  };
  GRADSERVE_ASSIGN_OR_RETURN(HostTensor t, ParseGrid(contents, '\n', /*force_rank2=*/true, skip, locate));
  if (index_column) {
    const int64_t rows = t.shape[0], columns = t.shape[1];
    std::vector<double> kept;
    kept.reserve(rows * (columns - 1));
    for (int64_t r = 0; r < rows; ++r) {
      kept.insert(kept.end(), t.values.begin() + r * columns + 1, t.values.begin() + (r + 1) * columns);
    }
    t.values = std::move(kept);
    t.shape[1] = columns - 1;
  }
  return t;
}

}  // namespace gradserve::client
